/** Graph passes over the IR: adapter placement, composition placement, saved activations, the AdamW update. */
@NullMarked
package dev.graft.compiler.passes;

import org.jspecify.annotations.NullMarked;
