/** The export command line: a graft's merged or unmerged ONNX export from its graphs and an adapter folder. */
@org.jspecify.annotations.NullMarked
package dev.graft.tools.export;
