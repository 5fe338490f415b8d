/** Adapter kinds: what each adds at which sites of a host. {@link dev.graft.compiler.kinds.AdapterKind} is the one mechanism; {@link dev.graft.compiler.kinds.AdapterKinds} lists the built-in ones. The kinds themselves live in one sub-package per family. */
@NullMarked
package dev.graft.compiler.kinds;

import org.jspecify.annotations.NullMarked;
