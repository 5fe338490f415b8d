package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import dev.graft.runtime.io.OnnxAdapterFile;
import dev.graft.runtime.io.OnnxAdapterFile.Contents;
import dev.graft.runtime.io.OnnxAdapterFile.DataType;
import dev.graft.runtime.io.OnnxAdapterFile.Parameter;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code .onnx_adapter} writer and reader: exact round trips for every supported type, files
 * that ONNX Runtime's own {@code OrtLoraAdapter} loads and applies (on a hand-built graph {@code y
 * = x·W + (x·A)·B} whose A and B are graph inputs with empty defaults), and hostile files, each
 * refused with {@code GRAFT-R070} naming what is wrong.
 */
class OnnxAdapterFileTest {
  @TempDir Path dir;

  private static Contents sample() {
    return new Contents(3, 5, List.of(
        Parameter.of("base.layer.0.query.lora_A", DataType.FLOAT, new long[] {2, 1}, new float[] {1, 1}),
        Parameter.of("base.layer.0.query.lora_B", DataType.FLOAT, new long[] {1, 2}, new float[] {10, 100}),
        Parameter.of("scalar", DataType.FLOAT, new long[] {}, new float[] {-0.25f}),
        Parameter.of("empty", DataType.FLOAT, new long[] {4, 0}, new float[] {}),
        Parameter.of("héllo ✓", DataType.FLOAT16, new long[] {3}, new float[] {1.5f, -2f, 65504f}),
        Parameter.of("bf", DataType.BFLOAT16, new long[] {1, 1, 2}, new float[] {3.140625f, -1e30f})));
  }

  @Test
  void roundTripsExactly() throws Exception {
    Contents c = sample();
    Path f = dir.resolve("sample.onnx_adapter");
    OnnxAdapterFile.write(f, c);
    Contents back = OnnxAdapterFile.read(f);
    assertEquals(c, back);
    assertEquals(3, back.adapterVersion());
    assertEquals(5, back.modelVersion());
    assertArrayEquals(OnnxAdapterFile.toBytes(c), Files.readAllBytes(f), "the file is the bytes toBytes gives");
    assertArrayEquals(OnnxAdapterFile.toBytes(c), OnnxAdapterFile.toBytes(back), "byte-identical re-encoding");
    assertArrayEquals(new float[] {1.5f, -2f, 65504f}, back.parameters().get(4).toFloats());
    assertArrayEquals(new float[] {3.140625f, Float.intBitsToFloat(0xf14a0000)}, back.parameters().get(5).toFloats());
    assertEquals(-1.0002556e30f, Float.intBitsToFloat(0xf14a0000), 1e24f);
    assertEquals("TORT", new String(Files.readAllBytes(f), 4, 4, java.nio.charset.StandardCharsets.US_ASCII));
  }

  @Test
  void halfPrecisionRoundsToNearestEven() {
    float[] v = {1 + 0x1p-11f, 1 + 0x1p-11f + 0x1p-20f, 1 + 3 * 0x1p-11f, 70000f, 0x1p-25f, 0x1p-24f * 1.5f, Float.NaN};
    float[] half = Parameter.of("h", DataType.FLOAT16, new long[] {v.length}, v).toFloats();
    assertEquals(1f, half[0]);
    assertEquals(1 + 0x1p-10f, half[1]);
    assertEquals(1 + 4 * 0x1p-11f, half[2]);
    assertEquals(Float.POSITIVE_INFINITY, half[3]);
    assertEquals(0f, half[4]);
    assertEquals(0x1p-23f, half[5]);
    assertTrue(Float.isNaN(half[6]));
    float[] b = Parameter.of("b", DataType.BFLOAT16, new long[] {3}, new float[] {1 + 0x1p-8f, 1 + 3 * 0x1p-8f, Float.NaN})
        .toFloats();
    assertEquals(1f, b[0]);
    assertEquals(1 + 4 * 0x1p-8f, b[1]);
    assertTrue(Float.isNaN(b[2]));
  }

  private static ValueInfoProto input(String name, Object... dims) {
    TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
    for (Object d : dims) {
      s.addDim(d instanceof String p
          ? TensorShapeProto.Dimension.newBuilder().setDimParam(p)
          : TensorShapeProto.Dimension.newBuilder().setDimValue((Integer) d));
    }
    return ValueInfoProto.newBuilder().setName(name)
        .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(1).setShape(s))).build();
  }

  private static TensorProto initializer(String name, long[] dims, float... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(1).setRawData(ByteString.copyFrom(b.array()));
    for (long d : dims) {
      t.addDims(d);
    }
    return t.build();
  }

  /** y = x·W + (x·A)·B with W the identity and A [2, rank], B [rank, 2] graph inputs whose defaults are empty. */
  static ModelProto loraGraph(String a, String b) {
    GraphProto g = GraphProto.newBuilder().setName("lora")
        .addNode(NodeProto.newBuilder().setOpType("MatMul").addInput("x").addInput("W").addOutput("xw"))
        .addNode(NodeProto.newBuilder().setOpType("MatMul").addInput("x").addInput(a).addOutput("xa"))
        .addNode(NodeProto.newBuilder().setOpType("MatMul").addInput("xa").addInput(b).addOutput("xab"))
        .addNode(NodeProto.newBuilder().setOpType("Add").addInput("xw").addInput("xab").addOutput("y"))
        .addInput(input("x", "batch", 2))
        .addInput(input(a, 2, "rank"))
        .addInput(input(b, "rank", 2))
        .addOutput(input("y", "batch", 2))
        .addInitializer(initializer("W", new long[] {2, 2}, 1, 0, 0, 1))
        .addInitializer(initializer(a, new long[] {2, 0}))
        .addInitializer(initializer(b, new long[] {0, 2}))
        .build();
    return ModelProto.newBuilder().setIrVersion(8).addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17))
        .setGraph(g).build();
  }

  @Test
  void onnxRuntimeLoadsAndAppliesAGraftFileOverInputsWithInitializerDefaults() throws Exception {
    Path f = dir.resolve("lora.onnx_adapter");
    OnnxAdapterFile.write(f, sample());
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession s = env.createSession(loraGraph("base.layer.0.query.lora_A", "base.layer.0.query.lora_B").toByteArray());
        OnnxTensor x = OnnxTensor.createTensor(env, new float[][] {{1, 2}})) {
      // Java hides inputs that have an initializer, and refuses them when fed directly
      assertEquals(java.util.Set.of("x"), s.getInputNames());
      assertArrayEquals(new float[] {1, 2}, ((float[][]) s.run(Map.of("x", x)).get(0).getValue())[0]);
      Parameter onlyLora0 = sample().parameters().get(0);
      Parameter onlyLora1 = sample().parameters().get(1);
      Path lora = dir.resolve("only-lora.onnx_adapter");
      OnnxAdapterFile.write(lora, new Contents(0, 0, List.of(onlyLora0, onlyLora1)));
      for (OrtLoraAdapter adapter : new OrtLoraAdapter[] {
          OrtLoraAdapter.create(lora.toString()), OrtLoraAdapter.create(Files.readAllBytes(lora))}) {
        try (adapter; OrtSession.RunOptions ro = new OrtSession.RunOptions()) {
          ro.addActiveLoraAdapter(adapter);
          // x·W + (x·A)·B = [1, 2] + 3·[10, 100]
          assertArrayEquals(new float[] {31, 302}, ((float[][]) s.run(Map.of("x", x), ro).get(0).getValue())[0]);
        }
      }
      // ONNX Runtime loads every type and an empty tensor, but 1.29 refuses a parameter without dims (a scalar)
      List<Parameter> noScalar = new java.util.ArrayList<>(sample().parameters());
      noScalar.removeIf(p -> p.dims().length == 0);
      try (OrtLoraAdapter all = OrtLoraAdapter.create(OnnxAdapterFile.toBytes(new Contents(1, 2, noScalar)))) {
        assertTrue(all != null);
      }
      OrtException scalar = assertThrows(OrtException.class, () -> OrtLoraAdapter.create(Files.readAllBytes(f)).close());
      assertTrue(scalar.getMessage().contains("'scalar': dims is missing or empty"), scalar.getMessage());
      // ... and, as the reader here, a parameter [2, 8] with the bytes of [2, 1]
      byte[] small = OnnxAdapterFile.toBytes(new Contents(0, 0, List.of(onlyLora0)));
      int table = 44 + u32(small, 44);
      int dims = table + 8 + u32(small, table + 8);
      put64(small, dims + 12, 8);
      OrtException size = assertThrows(OrtException.class, () -> OrtLoraAdapter.create(small).close());
      assertTrue(size.getMessage().contains("raw_data size (8) does not match expected size (64)"), size.getMessage());
      assertThrows(GraftException.class, () -> OnnxAdapterFile.parse("small", small));
    }
  }

  // ---------------------------------------------------------------- hostile files

  private static int u32(byte[] b, int at) {
    return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt(at);
  }

  private static void put32(byte[] b, int at, int v) {
    ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(at, v);
  }

  private static void put64(byte[] b, int at, long v) {
    ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(at, v);
  }

  /** Positions in a file of one parameter [2, 3] float: its table and the vectors it refers to. */
  private record Layout(byte[] bytes, int table, int name, int dims, int raw) {
    static Layout of() {
      byte[] b = OnnxAdapterFile.toBytes(new Contents(0, 0, List.of(
          Parameter.of("w", DataType.FLOAT, new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6}))));
      int table = 44 + u32(b, 44);
      return new Layout(b, table, table + 4 + u32(b, table + 4), table + 8 + u32(b, table + 8),
          table + 16 + u32(b, table + 16));
    }
  }

  private GraftException refused(byte[] bytes, String... fragments) throws Exception {
    Path f = Files.write(dir.resolve("hostile.onnx_adapter"), bytes);
    GraftException e = assertThrows(GraftException.class, () -> OnnxAdapterFile.read(f));
    assertEquals(RuntimeErrorCode.ONNX_ADAPTER, e.getErrorCode(), e.getMessage());
    assertTrue(e.getMessage().startsWith("[GRAFT-R070] " + f), e.getMessage());
    for (String s : fragments) {
      assertTrue(e.getMessage().contains(s), "'" + s + "' in " + e.getMessage());
    }
    return e;
  }

  @Test
  void theLayoutTheseTestsPatchIsTheOneRead() {
    Layout l = Layout.of();
    assertEquals(1, u32(l.bytes(), l.name()));
    assertEquals(2, u32(l.bytes(), l.dims()));
    assertEquals(24, u32(l.bytes(), l.raw()));
    assertEquals(0, (l.dims() + 4) % 8, "dims payload 8-aligned");
    assertEquals(0, (l.raw() + 4) % 8, "raw_data payload 8-aligned (force_align)");
  }

  @Test
  void everyTruncationIsRefused() throws Exception {
    Layout l = Layout.of();
    byte[] whole = l.bytes();
    assertEquals(l.raw() + 4 + 24, whole.length, "no padding after the last payload");
    for (int n = 0; n < whole.length; n++) {
      refused(Arrays.copyOf(whole, n));
    }
    refused(Arrays.copyOf(whole, 40), "past the end of the file");
  }

  @Test
  void aWrongIdentifierIsRefused() throws Exception {
    byte[] b = Layout.of().bytes();
    b[4] = 'P';
    b[7] = 0;
    refused(b, "identifier \"POR\\x00\"", "expected \"TORT\"");
  }

  @Test
  void anotherFormatVersionIsRefused() throws Exception {
    byte[] b = Layout.of().bytes();
    put32(b, 24, 2);
    refused(b, "format_version 2, expected 1");
  }

  @Test
  void offsetsOutOfRangeAreRefused() throws Exception {
    byte[] root = Layout.of().bytes();
    put32(root, 0, 1 << 30);
    refused(root, "the root offset", "past the end of the file");

    byte[] negativeVtable = Layout.of().bytes();
    put32(negativeVtable, 20, 1 << 20);
    refused(negativeVtable, "the Adapter table", "vtable");

    Layout l = Layout.of();
    byte[] name = l.bytes();
    put32(name, l.table() + 4, 0x7fff_fff0);
    refused(name, "parameters[0].name", "past the end of the file");

    byte[] param = Layout.of().bytes();
    put32(param, 44, -8);
    refused(param, "parameters[0]", "past the end of the file");

    byte[] count = Layout.of().bytes();
    put32(count, 40, 1_000_000_000);
    refused(count, "parameters at 40 claims 1000000000 elements");

    byte[] misaligned = Layout.of().bytes();
    put32(misaligned, 36, u32(misaligned, 36) + 1);
    refused(misaligned, "not 4-byte aligned");

    byte[] fieldOutsideTable = Layout.of().bytes();
    ByteBuffer.wrap(fieldOutsideTable).order(ByteOrder.LITTLE_ENDIAN).putShort(8 + 4 + 2 * 3, (short) 400);
    refused(fieldOutsideTable, "field parameters at offset 400");
  }

  @Test
  void aDimsProductThatOverflowsIsRefused() throws Exception {
    Layout l = Layout.of();
    byte[] b = l.bytes();
    put64(b, l.dims() + 4, 1L << 40);
    put64(b, l.dims() + 12, 1L << 40);
    refused(b, "parameter 'w'", "overflows");
    byte[] negative = Layout.of().bytes();
    put64(negative, l.dims() + 4, -2);
    refused(negative, "negative dimension");
  }

  @Test
  void rawDataThatDoesNotFitItsDimsIsRefused() throws Exception {
    Layout l = Layout.of();
    byte[] dims = l.bytes();
    put64(dims, l.dims() + 12, 4);
    refused(dims, "parameter 'w' FLOAT[2, 4] needs 32 bytes of raw_data, the file gives 24");
    byte[] raw = Layout.of().bytes();
    put32(raw, l.raw(), 20);
    refused(raw, "needs 24 bytes of raw_data, the file gives 20");
    byte[] huge = Layout.of().bytes();
    put32(huge, l.raw(), 0x7fff_0000);
    refused(huge, "raw_data", "past the end of the file");
  }

  @Test
  void unsupportedTypesMissingFieldsAndDuplicatesAreRefused() throws Exception {
    Layout l = Layout.of();
    byte[] type = l.bytes();
    put32(type, l.table() + 12, 8);
    refused(type, "data_type 8; supported: FLOAT (1), FLOAT16 (10), BFLOAT16 (16)");

    byte[] noName = Layout.of().bytes();
    int vt = l.table() - u32(noName, l.table());
    ByteBuffer.wrap(noName).order(ByteOrder.LITTLE_ENDIAN).putShort(vt + 4, (short) 0);
    refused(noName, "parameters[0] has no name");

    byte[] badUtf8 = Layout.of().bytes();
    badUtf8[l.name() + 4] = (byte) 0xff;
    refused(badUtf8, "is not UTF-8");

    byte[] unterminated = Layout.of().bytes();
    unterminated[l.name() + 5] = 'x';
    refused(unterminated, "not NUL-terminated");

    byte[] twice = OnnxAdapterFile.toBytes(new Contents(0, 0, List.of(
        Parameter.of("w", DataType.FLOAT, new long[] {1}, new float[] {1}),
        Parameter.of("v", DataType.FLOAT, new long[] {1}, new float[] {2}))));
    int second = 48;
    put32(twice, second, u32(twice, 44) + 44 - second);
    refused(twice, "two parameters named 'w'");
  }

  @Test
  void writerRefusesWhatItCannotWrite() {
    GraftException size = assertThrows(GraftException.class,
        () -> new Parameter("w", DataType.FLOAT, new long[] {2}, new byte[4]));
    assertEquals(RuntimeErrorCode.ARGUMENT, size.getErrorCode());
    GraftException dup = assertThrows(GraftException.class, () -> new Contents(0, 0, List.of(
        Parameter.of("w", DataType.FLOAT, new long[] {1}, new float[] {1}),
        Parameter.of("w", DataType.FLOAT, new long[] {1}, new float[] {1}))));
    assertTrue(dup.getMessage().contains("two adapter parameters are named 'w'"), dup.getMessage());
  }
}
