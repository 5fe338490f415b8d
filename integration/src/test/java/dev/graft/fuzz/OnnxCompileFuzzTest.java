package dev.graft.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.spec.onnx.Onnx.ModelProto;

/**
 * Fuzzes ONNX import and compilation: mutated tiny BERT hosts (from {@code dev.graft.testing})
 * compiled with the LoRA declaration of {@link FuzzFixtures}. Bytes that are not a protobuf
 * {@code ModelProto} at all are skipped (protobuf's parser is not Graft's); every model that
 * parses goes through {@code OnnxImport}, shape inference, placement, autodiff and emit. Oracle:
 * it compiles, or it fails with a {@link GraftCompileException} whose every diagnostic has a
 * code; nothing else (a raw exception fails the run), and no OutOfMemoryError at -Xmx1g. Corpus: {@code
 * OnnxCompileFuzzTestInputs/compile/} (the tiny BERT host, written by {@link FuzzSeeds}).
 */
public final class OnnxCompileFuzzTest {
  @FuzzTest(maxDuration = "5s")
  void compile(byte[] input) {
    check(input);
  }

  public static void fuzzerTestOneInput(byte[] input) {
    check(input);
  }

  static void check(byte[] input) {
    ModelProto model;
    try {
      model = ModelProto.parseFrom(input);
    } catch (InvalidProtocolBufferException notAModel) {
      return;
    }
    try {
      FuzzFixtures.declaration(new HostModel("fuzz.onnx", model, "fuzz")).compile();
    } catch (GraftCompileException failed) {
      if (failed.diagnostics().isEmpty()) {
        throw new AssertionError("a failed compilation without diagnostics", failed);
      }
      for (Diagnostic d : failed.diagnostics()) {
        if (d.code() == null) {
          throw new AssertionError("a diagnostic without a code: " + d.message(), failed);
        }
      }
    }
  }
}
