package dev.graft.runtime.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.spec.manifest.GatheredRole;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.TinyBertHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every linear-site kind served in mixed batches through the gathered graph, its factors from the
 * update graph (the LoRA family at its rank, the others a dense pair, IA³ with its bias change):
 * on the float32 tiny BERT, three adapters of random non-zero parameters (heads included) and
 * rows without adapter in one batch; each adapter's rows equal {@code AdapterModel.predict} with
 * its parameters within {@code 1e-5 · max(1, max |logit|)} (float32 sums in another order), rows
 * without adapter give a zero head.
 */
class GatheredKindsTest {
  @TempDir static Path dir;
  private static Path host;

  @BeforeAll
  static void writeHost() throws Exception {
    host = dir.resolve("tiny.onnx");
    Files.write(host, OnnxExport.write(TinyBertHost.graph(7), "tiny").toByteArray());
  }

  static Stream<Arguments> kinds() {
    String ffn = ".*/layer\\.\\d/(intermediate|output)/dense/MatMul";
    List<Arguments> out = new ArrayList<>();
    out.add(Arguments.of("lora r4", (UnaryOperator<Graft>) g -> g.lora("", o -> o.rank(4))));
    out.add(Arguments.of("rslora r4 on the feed-forward", (UnaryOperator<Graft>) g -> g.lora(ffn, o -> o.rank(4).set("rslora", true))));
    out.add(Arguments.of("dora r2", (UnaryOperator<Graft>) g -> g.lora("", o -> o.rank(2).set("dora", true))));
    out.add(Arguments.of("pissa r2", (UnaryOperator<Graft>) g -> g.lora("", o -> o.rank(2).set("init", "pissa"))));
    out.add(Arguments.of("dylora r4", (UnaryOperator<Graft>) g -> g.adapter("dylora", "", o -> o.rank(4))));
    out.add(Arguments.of("lokr", (UnaryOperator<Graft>) g -> g.adapter("lokr", ffn, o -> {})));
    out.add(Arguments.of("loha r2", (UnaryOperator<Graft>) g -> g.adapter("loha", "", o -> o.rank(2))));
    out.add(Arguments.of("vera r4", (UnaryOperator<Graft>) g -> g.adapter("vera", "", o -> o.rank(4))));
    out.add(Arguments.of("ia3", (UnaryOperator<Graft>) g -> g.adapter("ia3", "", o -> {})));
    return out.stream();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("kinds")
  void mixedBatchesEqualEachAdaptersPredict(String label, UnaryOperator<Graft> declare) {
    CompiledGraft graft = declare.apply(Graft.host(host).name("K")).classification(3).compile(GraphVariant.GATHERED);
    Random r = new Random(label.hashCode());
    Map<String, long[][]> in = inputs(r, 3, 6);
    Map<String, long[][]> none = inputs(r, 2, 6);
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withTraining(false));
        AdapterServer server = AdapterServer.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host))) {
      List<float[][]> expected = new ArrayList<>();
      List<AdapterServer.Request> requests = new ArrayList<>();
      for (int a = 0; a < 3; a++) {
        Map<String, float[]> v = random(model.getParameters(), r);
        v.forEach(model::setParameter);
        expected.add(model.predict(in));
        server.register("k" + a, v);
        requests.add(new AdapterServer.Request("k" + a, in));
        if (a == 1) {
          requests.add(new AdapterServer.Request(null, none));
        }
      }
      // requests: k0, k1, none, k2; served as k2, k0, none, k1.
      List<float[][]> out = server.predict(List.of(requests.get(3), requests.get(0), requests.get(2), requests.get(1)));
      double worst = 0;
      double scale = 1;
      int[] order = {2, 0, -1, 1};
      for (int q = 0; q < order.length; q++) {
        if (order[q] < 0) {
          for (float[] row : out.get(q)) {
            for (float v : row) {
              assertEquals(0f, v, label + ": no adapter, a zero head");
            }
          }
          continue;
        }
        float[][] want = expected.get(order[q]);
        for (int i = 0; i < want.length; i++) {
          for (int j = 0; j < want[i].length; j++) {
            worst = Math.max(worst, Math.abs(want[i][j] - out.get(q)[i][j]));
            scale = Math.max(scale, Math.abs(want[i][j]));
          }
        }
      }
      double spread = 0;
      for (int i = 0; i < expected.get(0).length; i++) {
        spread = Math.max(spread, Math.abs(expected.get(0)[i][0] - expected.get(1)[i][0]));
      }
      assertTrue(spread > 1e-3, label + ": the adapters differ");
      assertTrue(worst <= 1e-5 * scale, label + ": max |difference| " + worst + " at scale " + scale);
      boolean bias = graft.manifest().getGathered().getTensorsList().stream().anyMatch(t -> t.getRole() == GatheredRole.FACTOR_BIAS);
      System.out.printf("GatheredKindsTest %-30s max |difference| %.3g at scale %.3g, ranks %s%s%n", label, worst, scale,
          new java.util.TreeSet<>(server.ranks().values()), bias ? ", bias changes" : "");
    }
  }

  private static Map<String, long[][]> inputs(Random r, int rows, int length) {
    long[][] ids = new long[rows][length];
    long[][] mask = new long[rows][length];
    for (int i = 0; i < rows; i++) {
      for (int t = 0; t < length; t++) {
        ids[i][t] = r.nextInt(50);
        mask[i][t] = t < length - i ? 1 : 0;
      }
    }
    return Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", new long[rows][length]);
  }

  private static Map<String, float[]> random(List<Parameter> parameters, Random r) {
    Map<String, float[]> v = new LinkedHashMap<>();
    for (Parameter p : parameters) {
      float[] x = new float[(int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b)];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) (0.3 * r.nextGaussian());
      }
      v.put(p.getName(), x);
    }
    return v;
  }
}
