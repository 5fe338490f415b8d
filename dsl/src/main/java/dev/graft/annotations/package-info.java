/** The annotations a Graft declaration is written with. */
@NullMarked
package dev.graft.annotations;

import org.jspecify.annotations.NullMarked;
