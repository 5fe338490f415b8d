package dev.graft;

import com.google.protobuf.ByteString;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Tiny hosts as a hostile file could shape them: a good host (embedding → dense MatMul → Tanh,
 * hidden size 16, so both weights are host initializers fed at run time) and copies of it with
 * the dense weight moved to external data at a chosen location, offset and length.
 */
public final class UntrustedHosts {
  public static final String DENSE = "/layer.0/dense/MatMul";
  public static final String DENSE_WEIGHT = "layer.0.dense.weight";
  public static final int VOCAB = 10;
  public static final int HIDDEN = 16;
  public static final long[][] IDS = {{1, 2, 3}, {4, 5, 0}};
  public static final long[][] MASK = {{1, 1, 1}, {1, 1, 0}};

  private UntrustedHosts() {}

  /** The good host as an ONNX model; {@code seed} varies its weights. */
  public static ModelProto model(long seed) {
    Graph g = new Graph();
    List<Dim> bs = List.of(Dim.symbol("batch"), Dim.symbol("sequence"));
    g.addInput("input_ids", TensorType.of(TensorType.INT64, bs));
    g.addInput("attention_mask", TensorType.of(TensorType.INT64, bs));
    Random r = new Random(seed);
    String emb = g.op("/embeddings/Gather", "Gather", List.of(weight(g, r, "embeddings.weight", VOCAB, HIDDEN), "input_ids"));
    String h = g.op(DENSE, "MatMul", List.of(emb, weight(g, r, DENSE_WEIGHT, HIDDEN, HIDDEN)));
    g.outputs().add(g.opTo("last_hidden_state", "/layer.0/act/Tanh", "Tanh", List.of(h)));
    ShapeInference.run(g);
    return OnnxExport.write(g, "untrusted-host");
  }

  private static String weight(Graph g, Random r, String name, long rows, long cols) {
    double[] v = new double[(int) (rows * cols)];
    for (int i = 0; i < v.length; i++) {
      v[i] = r.nextGaussian() / Math.sqrt(rows);
    }
    g.addInitializer(Tensors.floats(name, TensorType.FLOAT, List.of(rows, cols), v), false);
    return name;
  }

  /** Writes {@code model} as {@code dir/name}. */
  public static Path write(Path dir, String name, ModelProto model) throws IOException {
    Path p = dir.resolve(name);
    Files.write(p, model.toByteArray());
    return p;
  }

  /** The bytes of the dense weight, as raw little-endian floats. */
  public static byte[] denseBytes(ModelProto model) {
    return initializer(model, DENSE_WEIGHT).getRawData().toByteArray();
  }

  /**
   * {@code model} with the dense weight as external data with the given entries (a null value
   * leaves the entry out).
   */
  public static ModelProto externalDense(ModelProto model, String location, String offset, String length) {
    var graph = model.getGraph().toBuilder();
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      TensorProto t = graph.getInitializer(i);
      if (t.getName().equals(DENSE_WEIGHT)) {
        TensorProto.Builder b = t.toBuilder().clearRawData().setDataLocation(TensorProto.DataLocation.EXTERNAL)
            .addExternalData(entry("location", location));
        if (offset != null) {
          b.addExternalData(entry("offset", offset));
        }
        if (length != null) {
          b.addExternalData(entry("length", length));
        }
        graph.setInitializer(i, b);
      }
    }
    return model.toBuilder().setGraph(graph).build();
  }

  /** {@code model} with the initializer named {@code name} replaced. */
  public static ModelProto withInitializer(ModelProto model, TensorProto replacement) {
    var graph = model.getGraph().toBuilder();
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      if (graph.getInitializer(i).getName().equals(replacement.getName())) {
        graph.setInitializer(i, replacement);
      }
    }
    return model.toBuilder().setGraph(graph).build();
  }

  public static TensorProto initializer(ModelProto model, String name) {
    return model.getGraph().getInitializerList().stream().filter(t -> t.getName().equals(name)).findFirst().orElseThrow();
  }

  /** A float tensor of {@code dims} whose raw data has {@code bytes} bytes (zeros). */
  public static TensorProto rawFloats(String name, List<Long> dims, int bytes) {
    return TensorProto.newBuilder().setName(name).setDataType(TensorType.FLOAT).addAllDims(dims)
        .setRawData(ByteString.copyFrom(new byte[bytes])).build();
  }

  public static Map<String, long[][]> inputs() {
    return Map.of("input_ids", IDS, "attention_mask", MASK);
  }

  private static StringStringEntryProto entry(String key, String value) {
    return StringStringEntryProto.newBuilder().setKey(key).setValue(value).build();
  }
}
