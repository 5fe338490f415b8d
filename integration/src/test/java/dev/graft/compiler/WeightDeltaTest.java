package dev.graft.compiler;

import dev.graft.testing.WholeStepCheck;
import dev.graft.testing.TinyBertHost;

import dev.graft.compiler.passes.AdapterPlacement;
import dev.graft.compiler.plan.PlannedAdapter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Parameter;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Each {@link LinearUpdateKind}'s weight update against the update its placement makes, through
 * ONNX Runtime on the float32 tiny BERT: with every parameter set to random non-zero values (not
 * its init, where B = 0 makes ΔW = 0), at every site of the declaration the adapted layer output
 * (what the layer's consumer reads in the inference graph) minus the host layer output {@code x·W
 * + b} equals {@code x·ΔW + Δb} from the nodes {@link LinearUpdateKind#weightUpdate} emits into
 * the same graph; for DoRA the adapted output equals {@code x·W' + b}. Tolerance: float32,
 * {@code |difference| ≤ 1e-5 · max(1, max |y'|)} per site (the values are summed in different
 * orders).
 */
class WeightDeltaTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int F = TensorType.FLOAT;
  /** The three shapes of a layer's linear sites: 8 → 8, 8 → 16, 16 → 8. */
  private static final String THREE_SITES = ".*/layer\\.0/(attention/self/query|intermediate/dense|output/dense)/MatMul";

  private static AdapterSpec spec(String kind, String target, Map<String, Object> options) {
    AdapterKind k = AdapterKinds.byId(kind).orElseThrow();
    Map<String, Object> all = new TreeMap<>(options);
    k.options().forEach(o -> all.putIfAbsent(o.name(), o.defaultValue()));
    return new AdapterSpec(kind, target, List.of(), all, null);
  }

  /** One site's tensors in the graph: the layer's input, its host output and what its consumer reads now. */
  private record Probe(LinearSite site, String x, String consumer, int index, String hostOutput, String delta,
      LinearUpdateKind.WeightUpdate update) {}

  /**
   * Places {@code specs} (in order) on the tiny BERT, emits every site's weight update into the
   * same graph, runs it with random parameters, asserting at every site the difference within
   * tolerance and the update non-zero; prints the largest |difference|.
   */
  private static void check(String label, AdapterSpec... specs) throws OrtException {
    Graph g = TinyBertHost.graph(7);
    Map<AdapterSpec, List<LinearSite>> sites = new LinkedHashMap<>();
    List<PlannedAdapter> plan = new ArrayList<>();
    Map<LinearSite, String[]> consumers = new HashMap<>();
    for (AdapterSpec spec : specs) {
      AdapterKind kind = AdapterKinds.byId(spec.kind()).orElseThrow();
      Pattern target = Pattern.compile(spec.target());
      List<LinearSite> chosen = LinearSite.find(g).stream().filter(s -> target.matcher(s.node()).matches()).toList();
      assertFalse(chosen.isEmpty(), spec.target());
      sites.put(spec, chosen);
      plan.add(new PlannedAdapter(spec, kind, chosen));
      for (LinearSite s : chosen) {
        String y = s.biasedOutput(g);
        Node consumer = g.nodes().stream().filter(n -> n.inputs().contains(y)).findFirst().orElseThrow();
        consumers.put(s, new String[] {hostNode(g, s).input(0), consumer.name(),
            String.valueOf(consumer.inputs().indexOf(y))});
      }
    }
    Map<LinearSite, String> biases = new HashMap<>();
    for (LinearSite s : consumers.keySet()) {
      String b = LinearUpdateKind.SiteTensors.hostBias(g, s);
      if (b != null) {
        biases.put(s, b);
      }
    }
    Placement placement = AdapterPlacement.place(g, plan, GraphVariant.INFERENCE, F);

    List<Probe> probes = new ArrayList<>();
    for (var e : sites.entrySet()) {
      LinearUpdateKind kind = (LinearUpdateKind) AdapterKinds.byId(e.getKey().kind()).orElseThrow();
      for (LinearSite s : e.getValue()) {
        LinearUpdateKind.SiteTensors tensors = kind.tensors(e.getKey(), e.getValue(), s, placement.parameters());
        LinearUpdateKind.WeightUpdate u = kind.weightUpdate(e.getKey(), s, g, tensors);
        String[] c = consumers.get(s);
        String prefix = "/test" + s.node();
        String host = g.op(prefix + "/MatMul_host", "MatMul", List.of(c[0], s.weight()));
        if (biases.containsKey(s)) {
          host = g.op(prefix + "/Add_host", "Add", List.of(host, biases.get(s)));
        }
        String delta = g.op(prefix + "/MatMul_update", "MatMul", List.of(c[0], u.weight()));
        probes.add(new Probe(s, c[0], c[1], Integer.parseInt(c[2]), host, delta, u));
      }
    }
    List<String> outputs = new ArrayList<>();
    for (Probe p : probes) {
      Node consumer = g.nodes().stream().filter(n -> n.name().equals(p.consumer())).findFirst().orElseThrow();
      outputs.add(consumer.input(p.index()));
      outputs.add(p.hostOutput());
      outputs.add(p.delta());
      outputs.add(p.update().weight());
      if (p.update().bias() != null) {
        outputs.add(p.update().bias());
      }
    }
    g.outputs().clear();
    outputs.stream().distinct().forEach(g.outputs()::add);
    ShapeInference.run(g);

    Random r = new Random(17);
    Map<String, float[]> values = new HashMap<>();
    for (Parameter p : placement.parameters()) {
      float[] v = new float[WholeStepCheck.size(p)];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) (0.5 * r.nextGaussian());
      }
      values.put(p.getName(), v);
    }
    Map<String, float[]> out = run(g, placement.parameters(), values);

    double worst = 0;
    for (Probe p : probes) {
      String where = label + " at " + p.site().node();
      Node consumer = g.nodes().stream().filter(n -> n.name().equals(p.consumer())).findFirst().orElseThrow();
      float[] adapted = out.get(consumer.input(p.index()));
      float[] host = out.get(p.hostOutput());
      float[] xDelta = out.get(p.delta());
      float[] bias = p.update().bias() == null ? null : out.get(p.update().bias());
      double[] hostBias = biases.containsKey(p.site()) ? Tensors.readDoubles(g.initializers().get(biases.get(p.site()))) : null;
      int width = (int) p.site().out();
      assertEquals(adapted.length, xDelta.length, where);
      double scale = 1;
      double update = 0;
      for (float v : adapted) {
        scale = Math.max(scale, Math.abs(v));
      }
      double siteWorst = 0;
      for (int i = 0; i < adapted.length; i++) {
        double expected = p.update().merged()
            ? xDelta[i] + (hostBias == null ? 0 : hostBias[i % width])
            : host[i] + xDelta[i] + (bias == null ? 0 : bias[i % width]);
        siteWorst = Math.max(siteWorst, Math.abs(adapted[i] - expected));
        update = Math.max(update, Math.abs(adapted[i] - host[i]));
      }
      assertTrue(siteWorst <= 1e-5 * scale, where + ": max |difference| " + siteWorst + " at scale " + scale);
      assertTrue(update > 1e-2, where + ": the adapter changes the output (max |y' − y| " + update + ")");
      float[] weight = out.get(p.update().weight());
      double[] w = Tensors.readDoubles(g.initializers().get(p.site().weight()));
      double change = 0;
      for (int i = 0; i < weight.length; i++) {
        change = Math.max(change, Math.abs(p.update().merged() ? weight[i] - w[i] : weight[i]));
      }
      assertTrue(change > 1e-3, where + ": " + (p.update().merged() ? "W' − W" : "ΔW") + " is not zero (" + change + ")");
      worst = Math.max(worst, siteWorst);
    }
    System.out.printf("WeightDeltaTest %-28s max |difference| %.3g over %d sites%n", label, worst, probes.size());
  }

  private static Node hostNode(Graph g, LinearSite s) {
    return g.nodes().stream().filter(n -> n.name().equals(s.node())).findFirst().orElseThrow();
  }

  private static Map<String, float[]> run(Graph g, List<Parameter> parameters, Map<String, float[]> values)
      throws OrtException {
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
      options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      try (OrtSession s = ENV.createSession(OnnxExport.write(g, "t").toByteArray(), options)) {
        Map<String, OnnxTensor> feeds = new HashMap<>();
        try {
          feeds.put("input_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(WholeStepCheck.INPUT_IDS), WholeStepCheck.SHAPE));
          feeds.put("attention_mask", OnnxTensor.createTensor(ENV, LongBuffer.wrap(WholeStepCheck.MASK), WholeStepCheck.SHAPE));
          feeds.put("token_type_ids",
              OnnxTensor.createTensor(ENV, LongBuffer.wrap(WholeStepCheck.TOKEN_TYPES), WholeStepCheck.SHAPE));
          for (Parameter p : parameters) {
            feeds.put(p.getName(), OnnxTensor.createTensor(ENV, FloatBuffer.wrap(values.get(p.getName())), WholeStepCheck.shape(p)));
          }
          try (OrtSession.Result r = s.run(feeds, Set.copyOf(g.outputs()))) {
            Map<String, float[]> out = new HashMap<>();
            for (String o : g.outputs()) {
              FloatBuffer b = ((OnnxTensor) r.get(o).orElseThrow()).getFloatBuffer();
              float[] d = new float[b.remaining()];
              b.get(d);
              out.put(o, d);
            }
            return out;
          }
        } finally {
          feeds.values().forEach(OnnxTensor::close);
        }
      }
    }
  }

  @Test
  void lora() throws OrtException {
    check("LoRA r2 alpha 6", spec("lora", THREE_SITES, Map.of("rank", 2, "alpha", 6.0)));
  }

  @Test
  void rsLora() throws OrtException {
    check("rsLoRA r4 alpha 6", spec("lora", THREE_SITES, Map.of("rank", 4, "alpha", 6.0, "rslora", true)));
  }

  @Test
  void doraGivesTheMergedWeight() throws OrtException {
    check("DoRA r2", spec("lora", THREE_SITES, Map.of("rank", 2, "dora", true)));
  }

  @Test
  void pissa() throws OrtException {
    check("PiSSA r2", spec("lora", THREE_SITES, Map.of("rank", 2, "init", "pissa")));
  }

  @Test
  void pissaWithDora() throws OrtException {
    check("PiSSA + DoRA r2", spec("lora", THREE_SITES, Map.of("rank", 2, "init", "pissa", "dora", true)));
  }

  @Test
  void dyLoraAtItsFullRank() throws OrtException {
    check("DyLoRA r3 alpha 6", spec("dylora", THREE_SITES, Map.of("rank", 3, "alpha", 6.0)));
  }

  /** 8 = 2·4 and 16 = 4·4: rank 1 decomposes W2 on every site, W1 full. */
  @Test
  void lokr() throws OrtException {
    check("LoKr r1 alpha 3", spec("lokr", THREE_SITES, Map.of("rank", 1, "alpha", 3.0)));
  }

  /** Factor 4: W1 [4, 4] decomposed at rank 1, W2 full where it is 2 × 2 or 2 × 4. */
  @Test
  void lokrDecomposingBoth() throws OrtException {
    check("LoKr factor 4 decomposeBoth",
        spec("lokr", THREE_SITES, Map.of("rank", 1, "alpha", 2.0, "factor", 4, "decomposeBoth", true)));
  }

  @Test
  void loha() throws OrtException {
    check("LoHa r2 alpha 4", spec("loha", THREE_SITES, Map.of("rank", 2, "alpha", 4.0)));
  }

  /** Every site reads another block of the one shared pair. */
  @Test
  void vera() throws OrtException {
    check("VeRA r4", spec("vera", THREE_SITES, Map.of("rank", 4)));
  }

  /**
   * Three declarations: the first makes the pair [8, 4]·[4, 8], the second (an 8 → 16 site) a
   * second pair {@code vera_A_2}, the third (named) reads the first pair: {@link
   * LinearUpdateKind#tensors} finds the pair each placement chose.
   */
  @Test
  void veraFindsThePairEachDeclarationReads() throws OrtException {
    AdapterSpec first = spec("vera", ".*/layer\\.0/attention/self/query/MatMul", Map.of("rank", 4));
    AdapterSpec second = spec("vera", ".*/layer\\.0/intermediate/dense/MatMul", Map.of("rank", 4));
    AdapterSpec third = spec("vera", ".*/layer\\.1/attention/self/value/MatMul", Map.of("rank", 4)).named("v3");
    check("VeRA, three declarations", first, second, third);
    Graph g = TinyBertHost.graph(7);
    LinearSite value = LinearSite.find(g).stream().filter(s -> s.node().contains("layer.1/attention/self/value")).findFirst()
        .orElseThrow();
    List<PlannedAdapter> plan = new ArrayList<>();
    for (AdapterSpec s : List.of(first, second, third)) {
      Pattern t = Pattern.compile(s.target());
      plan.add(new PlannedAdapter(s, AdapterKinds.byId("vera").orElseThrow(),
          LinearSite.find(g).stream().filter(x -> t.matcher(x.node()).matches()).toList()));
    }
    Placement placement = AdapterPlacement.place(g, plan, GraphVariant.INFERENCE, F);
    LinearUpdateKind.SiteTensors tensors = ((LinearUpdateKind) plan.get(2).kind())
        .tensors(third, plan.get(2).sites(), value, placement.parameters());
    assertEquals("vera_A", tensors.parameter("vera_A"));
    assertEquals("vera_B", tensors.parameter("vera_B"));
    assertEquals("v3." + value.modulePath() + ".vera_lambda_b", tensors.parameter("vera_lambda_b"));
    assertTrue(placement.parameters().stream().anyMatch(p -> p.getName().equals("vera_A_2")), "a second pair");
  }

  /** Key scales its output (bias too: Δb), intermediate dense likewise, the feed-forward output dense its input. */
  /** SoKA at three site shapes, K from the energy threshold (principal factors as constants, offsets random). */
  @Test
  void soka() throws OrtException {
    check("SoKA", spec("soka", THREE_SITES, Map.of("rule", "energy", "energy", 0.99)));
  }

  /**
   * SketchTune at three site shapes, one and two column groups per row: the merged weight is the
   * decoded sketch (codebook offsets random).
   */
  @Test
  void sketchTune() throws OrtException {
    check("SketchTune", spec("sketchtune", THREE_SITES, Map.of("groupSize", 4)));
    check("SketchTune groupsPerRow 2", spec("sketchtune", THREE_SITES, Map.of("groupSize", 4, "groupsPerRow", 2)));
  }

  @Test
  void ia3() throws OrtException {
    check("IA³", spec("ia3", ".*/layer\\.0/(attention/self/key|intermediate/dense|output/dense)/MatMul", Map.of()));
  }
}
