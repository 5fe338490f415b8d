/** Learned tokens: prompt tuning and prefix tuning. */
@NullMarked
package dev.graft.compiler.kinds.tokens;

import org.jspecify.annotations.NullMarked;
