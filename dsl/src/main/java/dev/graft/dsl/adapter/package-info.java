/**
 * Adapter kinds: what each adds at which sites of a host. {@link dev.graft.dsl.adapter.AdapterKind}
 * is the one mechanism; {@link dev.graft.dsl.adapter.AdapterKinds} lists the built-in ones.
 */
@NullMarked
package dev.graft.dsl.adapter;

import org.jspecify.annotations.NullMarked;
