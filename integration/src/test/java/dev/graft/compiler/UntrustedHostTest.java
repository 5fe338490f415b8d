package dev.graft.compiler;

import static dev.graft.UntrustedHosts.DENSE;
import static dev.graft.UntrustedHosts.DENSE_WEIGHT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.UntrustedHosts;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.dsl.Graft;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A host ONNX from anyone, at compile time: external data only as ONNX Runtime allows it
 * (finding 1 of issue 15), bounded sizes (finding 5) and a coded diagnostic for every host the
 * import cannot take (finding 6), through the builder ({@link Graft#host(Path)}) and {@link
 * GraftCompiler}.
 */
class UntrustedHostTest {
  @TempDir Path dir;
  @TempDir Path outside;

  private static final ModelProto GOOD = UntrustedHosts.model(1);

  /** Compiles a LoRA classifier on the host file through the builder; the diagnostics it fails with. */
  private static List<Diagnostic> builderErrors(Path host) {
    GraftCompileException e = assertThrows(GraftCompileException.class,
        () -> Graft.host(host).lora(DENSE, o -> o.rank(2)).classification(2).compile());
    return e.diagnostics();
  }

  /** The same through GraftCompiler, on a host made in memory. */
  private static List<Diagnostic> compilerErrors(ModelProto model) {
    HostModel host = HostModel.of("hostile.onnx", model);
    CompileResult r = GraftCompiler.compile(
        Graft.host(host).lora(DENSE, o -> o.rank(2)).classification(2).spec(), host);
    assertTrue(r.graft() == null || !r.diagnostics().isEmpty(), "compiled a hostile host");
    return r.diagnostics();
  }

  private static Diagnostic only(List<Diagnostic> errors, ErrorCode code) {
    assertEquals(1, errors.size(), errors.toString());
    assertEquals(code, errors.get(0).code(), errors.toString());
    return errors.get(0);
  }

  private Path externalHost(String location, String offset, String length) throws Exception {
    return UntrustedHosts.write(dir, "host.onnx", UntrustedHosts.externalDense(GOOD, location, offset, length));
  }

  @Test
  void aHostWithExternalDataInItsFolderCompiles() throws Exception {
    Files.write(dir.resolve("weights.bin"), UntrustedHosts.denseBytes(GOOD));
    CompiledGraft graft = Graft.host(externalHost("weights.bin", "0", "1024")).lora(DENSE, o -> o.rank(2))
        .classification(2).compile();
    assertTrue(graft.manifest().getHostInitializersList().contains(DENSE_WEIGHT));
    Files.write(dir.resolve("weights2.bin"), UntrustedHosts.denseBytes(GOOD));
    assertNotNull(Graft.host(externalHost("sub/../weights2.bin", null, null)).lora(DENSE, o -> o.rank(2))
        .classification(2).compile());
  }

  @Test
  void finding1_absoluteExternalDataPathIsRefused() throws Exception {
    Path secret = outside.resolve("secret.bin");
    Files.write(secret, UntrustedHosts.denseBytes(GOOD));
    Diagnostic d = only(builderErrors(externalHost(secret.toString(), "0", "1024")), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    assertTrue(d.message().startsWith("[GRAFT005] host model '"), d.message());
    assertTrue(d.message().contains("a location that is not allowed"), d.message());
    // nothing about the other file: neither that it exists nor its size
    assertFalse(d.message().contains("exist") || d.message().contains("1024 bytes") || d.message().contains("size"),
        d.message());
    only(compilerErrors(UntrustedHosts.externalDense(GOOD, secret.toString(), "0", "1024")),
        ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    only(compilerErrors(UntrustedHosts.externalDense(GOOD, "C:\\secret.bin", null, null)),
        ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
  }

  @Test
  void finding1_parentExternalDataPathIsRefused() throws Exception {
    Path secret = dir.getParent().resolve("graft-finding1-" + System.nanoTime() + ".bin");
    Files.write(secret, UntrustedHosts.denseBytes(GOOD));
    try {
      String escape = "../" + secret.getFileName();
      Diagnostic d = only(builderErrors(externalHost(escape, null, null)), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
      assertTrue(d.message().contains("'../" + secret.getFileName() + "', a location that is not allowed"), d.message());
      only(builderErrors(externalHost("sub/../../" + secret.getFileName(), null, null)),
          ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
      // a missing file gives the same answer as one that exists
      Diagnostic missing = only(builderErrors(externalHost("../no-such-file.bin", null, null)),
          ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
      assertEquals(d.message().replace(secret.getFileName().toString(), "no-such-file.bin"), missing.message());
      only(compilerErrors(UntrustedHosts.externalDense(GOOD, escape, null, null)), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    } finally {
      Files.delete(secret);
    }
  }

  @Test
  void finding1_symlinkEscapeIsRefused() throws Exception {
    Path secret = outside.resolve("secret.bin");
    Files.write(secret, UntrustedHosts.denseBytes(GOOD));
    Files.createSymbolicLink(dir.resolve("weights.bin"), secret);
    Files.createSymbolicLink(dir.resolve("dangling.bin"), outside.resolve("no-such-file.bin"));
    Files.createSymbolicLink(dir.resolve("linked"), outside);
    Diagnostic d = only(builderErrors(externalHost("weights.bin", "0", "1024")), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    assertTrue(d.message().contains("'weights.bin', a location that is not allowed"), d.message());
    Diagnostic dangling = only(builderErrors(externalHost("dangling.bin", "0", "1024")),
        ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    assertEquals(d.message().replace("weights.bin", "dangling.bin").replace(" (symbolic links may not lead out of it)", ""),
        dangling.message());
    only(builderErrors(externalHost("linked/secret.bin", "0", "1024")), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
  }

  @Test
  void finding1_badExternalOffsetOrLengthIsRefused() throws Exception {
    Files.write(dir.resolve("weights.bin"), UntrustedHosts.denseBytes(GOOD));
    Diagnostic notANumber = only(builderErrors(externalHost("weights.bin", "12x", null)),
        ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    assertTrue(notANumber.message().contains("external data offset '12x', not a number"), notANumber.message());
    only(builderErrors(externalHost("weights.bin", "-8", null)), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    only(builderErrors(externalHost("weights.bin", "0", "99999999999999999999")), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    Diagnostic wrongLength = only(builderErrors(externalHost("weights.bin", "0", "8")), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    assertTrue(wrongLength.message().contains("length 8, its dims [16, 16] need 1024"), wrongLength.message());
    Diagnostic pastTheEnd = only(builderErrors(externalHost("weights.bin", "4", "1024")),
        ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    assertTrue(pastTheEnd.message().contains("(offset 4, 1024 bytes) that does not fit its data file"), pastTheEnd.message());
    assertFalse(pastTheEnd.message().contains("1028") || pastTheEnd.message().contains("size"), pastTheEnd.message());
    only(builderErrors(externalHost("weights.bin", String.valueOf(Long.MAX_VALUE), null)),
        ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
  }

  @Test
  void finding5_shapeConstantOf2To31ElementsIsACodedError() {
    ModelProto huge = UntrustedHosts.withInitializer(GOOD, TensorProto.newBuilder().setName(DENSE_WEIGHT)
        .setDataType(TensorType.INT64).addDims(1L << 31).build());
    Diagnostic d = only(compilerErrors(huge), ErrorCode.HOST_SIZE_TOO_LARGE);
    assertTrue(d.message().startsWith("[GRAFT007] host model 'hostile.onnx' declares initializer 'layer.0.dense.weight'"
        + " with dim 2147483648"), d.message());
  }

  /** A Reshape to a shape of 2^31-1 values whose values are unknown: the result's rank is left unknown, not allocated. */
  @Test
  void finding5_reshapeToAShapeOfHugeLengthLeavesTheRankUnknown() {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, 2, 3));
    g.addInput("shape", TensorType.of(TensorType.INT64, Integer.MAX_VALUE));
    g.outputs().add(g.opTo("y", "/Reshape", "Reshape", List.of("x", "shape")));
    ShapeInference.run(g);
    assertFalse(g.type("y").hasRank(), g.type("y").toString());
    assertEquals(TensorType.FLOAT, g.type("y").elemType());
    g.addInput("shape4", TensorType.of(TensorType.INT64, 4));
    g.outputs().add(g.opTo("z", "/Reshape4", "Reshape", List.of("x", "shape4")));
    ShapeInference.run(g);
    assertEquals(4, g.type("z").rank());
  }

  @Test
  void finding5_dimsOf2To62AreACodedError() {
    ModelProto dims = UntrustedHosts.withInitializer(GOOD, TensorProto.newBuilder().setName(DENSE_WEIGHT)
        .setDataType(TensorType.FLOAT).addDims(1L << 62).addDims(4).build());
    only(compilerErrors(dims), ErrorCode.HOST_SIZE_TOO_LARGE);
    ModelProto overflow = UntrustedHosts.withInitializer(GOOD, TensorProto.newBuilder().setName(DENSE_WEIGHT)
        .setDataType(TensorType.FLOAT).addDims(1L << 30).addDims(1L << 30).addDims(1L << 30).build());
    Diagnostic d = only(compilerErrors(overflow), ErrorCode.HOST_SIZE_TOO_LARGE);
    assertTrue(d.message().contains("more than 2147483647 elements"), d.message());
    ModelProto input = GOOD.toBuilder().setGraph(GOOD.getGraph().toBuilder().setInput(0, GOOD.getGraph().getInput(0)
        .toBuilder().setType(int64Type(1L << 62, 3)))).build();
    Diagnostic in = only(compilerErrors(input), ErrorCode.HOST_SIZE_TOO_LARGE);
    assertTrue(in.message().contains("value 'input_ids' with dim 4611686018427387904"), in.message());
    // products of known dims in shape arithmetic saturate to unknown instead of overflowing
    assertFalse(Dim.of(1L << 62).times(Dim.of(4)).isKnown());
    assertEquals(1L << 62, Dim.of(1L << 31).times(Dim.of(1L << 31)).size());
  }

  private static TypeProto int64Type(long... dims) {
    TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
    for (long d : dims) {
      s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
    }
    return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(TensorType.INT64).setShape(s))
        .build();
  }

  @Test
  void finding6_unreadableHostFileIsACodedError() throws Exception {
    Diagnostic missing = only(builderErrors(dir.resolve("no-such-host.onnx")), ErrorCode.HOST_NOT_FOUND);
    assertTrue(missing.message().startsWith("[GRAFT001] host model '"), missing.message());
    Diagnostic folder = only(builderErrors(dir), ErrorCode.HOST_UNREADABLE);
    assertTrue(folder.message().startsWith("[GRAFT002]"), folder.message());
    Path garbage = dir.resolve("garbage.onnx");
    Files.write(garbage, new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, 0x0f, 1, 2});
    Diagnostic notOnnx = only(builderErrors(garbage), ErrorCode.HOST_UNREADABLE);
    assertTrue(notOnnx.message().contains("not an ONNX model"), notOnnx.message());
  }

  @Test
  void finding6_graphWithACycleIsACodedError() throws Exception {
    // Tanh reads the output of a node that reads Tanh's output
    var g = GOOD.getGraph().toBuilder();
    g.addNode(NodeProto.newBuilder().setName("/loop/Neg").setOpType("Neg").addInput("last_hidden_state").addOutput("loop"));
    NodeProto tanh = g.getNode(2);
    g.setNode(2, tanh.toBuilder().clearInput().addInput("loop"));
    ModelProto cyclic = GOOD.toBuilder().setGraph(g).build();
    Diagnostic d = only(compilerErrors(cyclic), ErrorCode.HOST_GRAPH_INVALID);
    assertTrue(d.message().startsWith("[GRAFT006] host model 'hostile.onnx' is not a graph Graft can import:"), d.message());
    assertTrue(d.message().contains("cycle"), d.message());
    only(builderErrors(UntrustedHosts.write(dir, "cyclic.onnx", cyclic)), ErrorCode.HOST_GRAPH_INVALID);
  }

  @Test
  void finding6_rankUnknownIsACodedError() throws Exception {
    // opset 11 Softmax needs its input's rank; Tanh's input here has none
    var g = GOOD.getGraph().toBuilder();
    g.setInput(0, ValueInfoProto.newBuilder().setName("input_ids")
        .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(TensorType.INT64))));
    g.addNode(NodeProto.newBuilder().setName("/Softmax").setOpType("Softmax").addInput("last_hidden_state")
        .addOutput("probs"));
    ModelProto legacy = GOOD.toBuilder().setGraph(g).clearOpsetImport()
        .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(11)).build();
    Diagnostic d = only(compilerErrors(legacy), ErrorCode.HOST_GRAPH_INVALID);
    assertTrue(d.message().contains("rank of Softmax input unknown"), d.message());
    only(builderErrors(UntrustedHosts.write(dir, "legacy.onnx", legacy)), ErrorCode.HOST_GRAPH_INVALID);
  }

  @Test
  void finding6_indexOutOfRangeIsACodedError() throws Exception {
    // Gather index 5 of a shape of rank 2
    var g = GOOD.getGraph().toBuilder();
    g.addInitializer(TensorProto.newBuilder().setName("five").setDataType(TensorType.INT64).addInt64Data(5));
    g.addNode(NodeProto.newBuilder().setName("/Shape").setOpType("Shape").addInput("input_ids").addOutput("shape"));
    g.addNode(NodeProto.newBuilder().setName("/Gather5").setOpType("Gather").addInput("shape").addInput("five")
        .addOutput("dim5"));
    ModelProto bad = GOOD.toBuilder().setGraph(g).build();
    Diagnostic d = only(compilerErrors(bad), ErrorCode.HOST_GRAPH_INVALID);
    assertTrue(d.message().startsWith("[GRAFT006]"), d.message());
    only(builderErrors(UntrustedHosts.write(dir, "gather.onnx", bad)), ErrorCode.HOST_GRAPH_INVALID);
  }

  @Test
  void finding6_rawDataShorterThanDimsIsACodedError() throws Exception {
    ModelProto shortData = UntrustedHosts.withInitializer(GOOD,
        UntrustedHosts.rawFloats(DENSE_WEIGHT, List.of(16L, 16L), 8));
    Diagnostic d = only(compilerErrors(shortData), ErrorCode.HOST_GRAPH_INVALID);
    assertTrue(d.message().contains("initializer 'layer.0.dense.weight' has 8 bytes of raw data, its dims [16, 16] need 1024"),
        d.message());
    only(builderErrors(UntrustedHosts.write(dir, "short.onnx", shortData)), ErrorCode.HOST_GRAPH_INVALID);
    // a small constant too (shape inference reads those)
    ModelProto shortShape = UntrustedHosts.withInitializer(GOOD, TensorProto.newBuilder().setName(DENSE_WEIGHT)
        .setDataType(TensorType.INT64).addDims(4).setRawData(com.google.protobuf.ByteString.copyFrom(new byte[12])).build());
    only(compilerErrors(shortShape), ErrorCode.HOST_GRAPH_INVALID);
  }

  @Test
  void finding6_externalOffsetThatIsNotANumberIsACodedError() throws Exception {
    Files.write(dir.resolve("weights.bin"), UntrustedHosts.denseBytes(GOOD));
    Diagnostic d = only(builderErrors(externalHost("weights.bin", "0", "lots")), ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
    assertTrue(d.message().contains("external data length 'lots', not a number"), d.message());
    only(compilerErrors(UntrustedHosts.externalDense(GOOD, "weights.bin", "0x10", null)),
        ErrorCode.HOST_EXTERNAL_DATA_REFUSED);
  }
}
