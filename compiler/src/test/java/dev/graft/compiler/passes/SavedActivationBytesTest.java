package dev.graft.compiler.passes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.manifest.Dim;
import dev.graft.spec.manifest.SavedActivation;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Saved-activation bytes: computed where every dimension is fixed, a coded error (GRAFT192) where one is not. */
class SavedActivationBytesTest {
  private static SavedActivation activation(String name, Dim... dims) {
    return SavedActivation.newBuilder().setName(name).setElemType(TensorType.FLOAT).addAllShape(List.of(dims)).build();
  }

  private static Dim size(long s) {
    return Dim.newBuilder().setSize(s).build();
  }

  private static Dim symbol(String s) {
    return Dim.newBuilder().setSymbol(s).build();
  }

  @Test
  void bytesOfNamedDimensions() {
    List<SavedActivation> saved = List.of(activation("a", symbol("batch"), size(8)), activation("b", size(3)));
    assertEquals(4 * (2 * 8 + 3), SavedActivations.bytes(saved, Map.of("batch", 2L)));
  }

  @Test
  void anUnnamedDimensionIsACodedErrorNamingTheActivation() {
    List<SavedActivation> saved = List.of(activation("/encoder/Reshape_output_0", symbol("batch"), symbol("?"), size(4)));
    GraftCompileException e = assertThrows(GraftCompileException.class,
        () -> SavedActivations.bytes(saved, Map.of("batch", 2L, "sequence", 8L)));
    assertEquals(ErrorCode.ACTIVATION_SIZE_UNKNOWN, e.diagnostics().get(0).code());
    assertEquals("[GRAFT192] saved activation '/encoder/Reshape_output_0' has a dimension whose size the host does"
        + " not name ([batch, ?, 4]); its size is not known before the graph runs, so the bytes cannot be computed"
        + " for any sizes", e.getMessage());
  }

  @Test
  void aNegativeSizeIsRefused() {
    List<SavedActivation> saved = List.of(activation("a", symbol("batch")));
    GraftCompileException e = assertThrows(GraftCompileException.class,
        () -> SavedActivations.bytes(saved, Map.of("batch", -1L)));
    assertEquals(ErrorCode.ACTIVATION_SIZE_UNKNOWN, e.diagnostics().get(0).code());
  }
}
