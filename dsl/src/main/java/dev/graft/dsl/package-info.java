/** The builder API: declare adapters on a host model and compile them at run time. */
@NullMarked
package dev.graft.dsl;

import org.jspecify.annotations.NullMarked;
