package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.CodedInputStream;
import dev.graft.runtime.session.HostWeights;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HostWeightsTest {
  @TempDir Path dir;

  @Test
  void readsRawTypedAndExternalData() throws Exception {
    ByteBuffer ext = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
    ext.putFloat(0, 99f).putFloat(4, 99f).putFloat(8, 1.25f).putFloat(12, -4f);
    Files.write(dir.resolve("weights.bin"), ext.array());
    GraphProto g =
        GraphProto.newBuilder()
            .addInitializer(TinyGraphs.floats("raw", new long[] {2}, 1f, 2f))
            .addInitializer(TensorProto.newBuilder().setName("typed").setDataType(1).addDims(3)
                .addFloatData(0.5f).addFloatData(1.5f).addFloatData(2.5f))
            .addInitializer(TensorProto.newBuilder().setName("ints").setDataType(7).addDims(2)
                .addInt64Data(7).addInt64Data(-8))
            .addInitializer(TensorProto.newBuilder().setName("ext").setDataType(1).addDims(1).addDims(2)
                .setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(StringStringEntryProto.newBuilder().setKey("location").setValue("weights.bin"))
                .addExternalData(StringStringEntryProto.newBuilder().setKey("offset").setValue("8"))
                .addExternalData(StringStringEntryProto.newBuilder().setKey("length").setValue("8")))
            .build();
    Path host = dir.resolve("host.onnx");
    Files.write(host, TinyGraphs.model(g).toByteArray());
    try (HostWeights w = HostWeights.read(host, List.of("typed", "ext", "ints", "raw"))) {
      assertEquals(4, w.tensors().size());
      assertArrayEquals(new float[] {1f, 2f}, floats(w, "raw"), 0f);
      assertArrayEquals(new float[] {0.5f, 1.5f, 2.5f}, floats(w, "typed"), 0f);
      assertArrayEquals(new float[] {1.25f, -4f}, floats(w, "ext"), 0f);
      assertArrayEquals(new long[] {1, 2}, w.tensors().get("ext").getInfo().getShape());
      long[] ints = (long[]) w.tensors().get("ints").getValue();
      assertArrayEquals(new long[] {7, -8}, ints);
    }
    FormatException missing = assertThrows(FormatException.class, () -> HostWeights.read(host, List.of("raw", "nope")));
    assertTrue(missing.getMessage().contains("no initializer named [nope]"), missing.getMessage());
  }

  private static float[] floats(HostWeights w, String name) throws Exception {
    java.nio.FloatBuffer b = w.tensors().get(name).getFloatBuffer();
    float[] out = new float[b.remaining()];
    b.get(out);
    return out;
  }

  /** Streams the real 90 MB all-MiniLM-L6-v2 host from the classpath and reads two weights. */
  @Test
  void readsTheRealHostFromTheClasspath() throws Exception {
    ClassLoader loader = getClass().getClassLoader();
    ModelProto model;
    try (InputStream in = loader.getResourceAsStream("all-minilm-l6-v2.onnx")) {
      CodedInputStream cis = CodedInputStream.newInstance(in);
      cis.setSizeLimit(Integer.MAX_VALUE);
      model = ModelProto.parseFrom(cis);
    }
    List<TensorProto> big =
        model.getGraph().getInitializerList().stream().filter(t -> t.getDimsCount() == 2 && t.getDataType() == 1)
            .limit(2).toList();
    assertEquals(2, big.size());
    try (HostWeights w =
        HostWeights.readResource(loader, "all-minilm-l6-v2.onnx", big.stream().map(TensorProto::getName).toList())) {
      for (TensorProto t : big) {
        ByteBuffer expected = t.getRawData().asReadOnlyByteBuffer();
        ByteBuffer got = w.weights().get(t.getName()).data().duplicate().clear();
        assertEquals(expected, got, t.getName());
        assertArrayEquals(
            t.getDimsList().stream().mapToLong(Long::longValue).toArray(),
            w.tensors().get(t.getName()).getInfo().getShape());
      }
    }
  }
}
