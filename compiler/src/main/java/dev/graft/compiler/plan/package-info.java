/** Planning: validation of a declaration against the host, site selection, options, composition. */
@NullMarked
package dev.graft.compiler.plan;

import org.jspecify.annotations.NullMarked;
