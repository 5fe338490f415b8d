/**
 * Emit: the graph variants of one compilation checked against each other ({@link
 * dev.graft.compiler.emit.ParameterAgreement}) and written out as ONNX models and the manifest that
 * names their tensors ({@link dev.graft.compiler.emit.ManifestWriter}).
 */
@NullMarked
package dev.graft.compiler.emit;

import org.jspecify.annotations.NullMarked;
