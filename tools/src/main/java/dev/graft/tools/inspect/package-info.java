/**
 * The host inspector: a command-line tool that lists the sites of a host model each adapter kind
 * can attach to, and which of them a declaration's selector and layer filter take (through the
 * compiler's own selection, {@link dev.graft.compiler.plan.SiteSelection}).
 */
@NullMarked
package dev.graft.tools.inspect;

import org.jspecify.annotations.NullMarked;
