/** What the command lines share: reading option values and naming grafts. */
@NullMarked
package dev.graft.tools.cli;

import org.jspecify.annotations.NullMarked;
