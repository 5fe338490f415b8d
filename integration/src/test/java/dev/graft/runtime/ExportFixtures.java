package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.onnxruntime.OrtEnvironment;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.manifest.Parameter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * What the export tests share: a tiny BERT-like host with every kind of linear site, random
 * non-zero parameters, and a bare ONNX Runtime run in a forked JVM with only the onnxruntime jar
 * on its class path.
 */
final class ExportFixtures {
  static final int VOCAB = 20;
  /** Above the compiler's inline limit (64 elements), so the biases too are fed from the host file. */
  static final int HIDDEN = 66;
  static final int WIDE = 70;
  static final long[][] IDS = {{1, 5, 9, 3, 7}, {2, 4, 6, 8, 0}};
  static final long[][] MASK = {{1, 1, 1, 1, 1}, {1, 1, 1, 1, 0}};
  static final String MATMUL_SITES = ".*/(query|key)/MatMul";
  static final String ALL_SITES = ".*/(query|key|value|dense)/(MatMul|Gemm)";

  private ExportFixtures() {}

  static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    return m;
  }

  /**
   * Writes the host {@code tiny-sites.onnx} into {@code dir}: an embedding, MatMul + Add sites
   * (query [66, 66], key [66, 70]), Gemm sites with {@code transB=1} (value: alpha 0.5 and C;
   * dense [70, 66]: no C), a plain MatMul mixing them, output {@code last_hidden_state}.
   */
  static Path sitesHost(Path dir) throws IOException {
    Random r = new Random(5);
    Graph g = new Graph();
    // Static batch and sequence: a Gemm site reads the flattened [batch · sequence, hidden].
    List<Dim> bs = List.of(Dim.of(IDS.length), Dim.of(IDS[0].length));
    g.addInput("input_ids", TensorType.of(TensorType.INT64, bs));
    g.addInput("attention_mask", TensorType.of(TensorType.INT64, bs));
    String h = g.op("/embeddings/word_embeddings/Gather", "Gather",
        List.of(weight(g, r, "embeddings.word_embeddings.weight", 1, VOCAB, HIDDEN), "input_ids"));
    String p = "/encoder/layer.0/attention/self/";
    String q = g.op(p + "query/Add", "Add", List.of(g.op(p + "query/MatMul", "MatMul",
        List.of(h, weight(g, r, "query.weight", 0.15, HIDDEN, HIDDEN))), weight(g, r, "query.bias", 0.1, HIDDEN)));
    String k = g.op(p + "key/Add", "Add", List.of(g.op(p + "key/MatMul", "MatMul",
        List.of(h, weight(g, r, "key.weight", 0.15, HIDDEN, WIDE))), weight(g, r, "key.bias", 0.1, WIDE)));
    String flat = g.op(p + "Flatten", "Flatten", List.of(h), Node.attr("axis", 2L));
    String v = g.op(p + "value/Gemm", "Gemm", List.of(flat, weight(g, r, "value.weight", 0.15, HIDDEN, HIDDEN),
        weight(g, r, "value.bias", 0.1, HIDDEN)), Node.attr("transB", 1L), Node.attr("alpha", 0.5f));
    String d = g.op(p + "dense/Gemm", "Gemm", List.of(v, weight(g, r, "dense.weight", 0.15, WIDE, HIDDEN)),
        Node.attr("transB", 1L));
    String back = g.op(p + "Reshape", "Reshape", List.of(d, g.op(p + "Shape", "Shape", List.of(k))));
    g.opTo("last_hidden_state", p + "Tanh", "Tanh", List.of(g.op(p + "Add", "Add",
        List.of(g.op(p + "Add_qk", "Add", List.of(g.op(p + "MatMul_qk", "MatMul",
            List.of(q, weight(g, r, "mix.weight", 0.15, HIDDEN, WIDE))), k)), back))));
    g.outputs().add("last_hidden_state");
    ShapeInference.run(g);
    Path host = dir.resolve("tiny-sites.onnx");
    Files.write(host, OnnxExport.write(g, "tiny-sites").toByteArray());
    return host;
  }

  static String weight(Graph g, Random r, String name, double scale, long... dims) {
    int n = 1;
    for (long x : dims) {
      n *= (int) x;
    }
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] = scale * r.nextGaussian();
    }
    g.addInitializer(Tensors.floats(name, TensorType.FLOAT, java.util.Arrays.stream(dims).boxed().toList(), v), false);
    return name;
  }


  /** Adds {@code 0.3·N(0, 1)} (seeded) to every parameter of {@code model}, so no adapter is at its identity. */
  static void randomize(AdapterModel model, long seed) {
    randomize(model, seed, 0.3);
  }

  /** Adds {@code scale·N(0, 1)} (seeded) to every parameter of {@code model}. */
  static void randomize(AdapterModel model, long seed, double scale) {
    Random r = new Random(seed);
    for (Parameter p : model.getParameters()) {
      float[] v = model.getParameter(p.getName());
      for (int i = 0; i < v.length; i++) {
        v[i] += (float) (scale * r.nextGaussian());
      }
      model.setParameter(p.getName(), v);
    }
  }

  /** The largest |a − b| over two equally shaped results. */
  static double maxDifference(float[][] a, float[][] b) {
    assertEquals(a.length, b.length);
    double worst = 0;
    for (int i = 0; i < a.length; i++) {
      assertEquals(a[i].length, b[i].length, "row " + i);
      for (int j = 0; j < a[i].length; j++) {
        worst = Math.max(worst, Math.abs(a[i][j] - b[i][j]));
      }
    }
    return worst;
  }

  /** The result of a bare run: the session's input names and every output's values. */
  record BareResult(List<String> inputs, Map<String, float[]> outputs) {
    /** Output {@code name} as rows of {@code width}. */
    float[][] rows(String name, int width) {
      float[] v = outputs.get(name);
      float[][] out = new float[v.length / width][width];
      for (int i = 0; i < out.length; i++) {
        System.arraycopy(v, i * width, out[i], 0, width);
      }
      return out;
    }
  }

  /**
   * Runs {@code model} in a forked {@code java -cp <onnxruntime jar> BareRun.java} (no Graft, no
   * protobuf on its class path) on int64 {@code inputs}; its inputs and outputs.
   */
  static BareResult bareRun(Path model, Map<String, long[][]> inputs, Path work) throws Exception {
    Path program = work.resolve("BareRun.java");
    try (InputStream in = ExportFixtures.class.getResourceAsStream("/dev/graft/export/BareRun.java")) {
      Files.write(program, in.readAllBytes());
    }
    Path ort = Path.of(OrtEnvironment.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-cp", ort.toString(), program.toString(), model.toString()));
    inputs.forEach((name, rows) -> {
      StringBuilder s = new StringBuilder(name).append('=').append(rows.length).append(',').append(rows[0].length).append(':');
      for (long[] row : rows) {
        for (long v : row) {
          s.append(v).append(',');
        }
      }
      command.add(s.substring(0, s.length() - 1));
    });
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("the bare run did not finish: " + out);
    }
    assertEquals(0, p.exitValue(), "the bare run failed:\n" + out);
    List<String> names = List.of();
    Map<String, float[]> outputs = new LinkedHashMap<>();
    for (String line : out.split("\n")) {
      String[] f = line.trim().split(" ");
      if (f[0].equals("inputs")) {
        names = List.of(f).subList(1, f.length);
      } else if (f[0].equals("output")) {
        float[] v = new float[f.length - 2];
        for (int i = 0; i < v.length; i++) {
          v[i] = Float.parseFloat(f[i + 2]);
        }
        outputs.put(f[1], v);
      }
    }
    return new BareResult(names, outputs);
  }
}
