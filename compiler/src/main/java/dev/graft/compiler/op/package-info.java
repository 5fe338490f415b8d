/**
 * The op DSL for user-defined adapter kinds: a {@link dev.graft.compiler.op.CustomAdapterKind}
 * defines its adapter as a tensor expression ({@link dev.graft.compiler.op.Tensor}) over the linear
 * layer's input and output and its own parameters ({@link dev.graft.compiler.op.Param}), which Graft
 * places, differentiates and trains like any built-in kind. Methods are named after Kotlin's
 * operators ({@code plus}, {@code minus}, {@code times}, {@code div}, {@code unaryMinus},
 * {@code get}), so Kotlin writes {@code value + x.matmul(a).matmul(b) * scale}.
 */
@NullMarked
package dev.graft.compiler.op;

import org.jspecify.annotations.NullMarked;
