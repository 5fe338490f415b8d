package dev.graft.dsl.compile;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.dsl.ir.Graph;
import dev.graft.dsl.ir.TensorType;
import dev.graft.dsl.ir.Tensors;
import dev.graft.dsl.spec.AdamWSpec;
import dev.graft.dsl.spec.ClassificationSpec;
import dev.graft.dsl.spec.GraftSpec;
import dev.graft.dsl.spec.AdapterSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The whole training step of a graft compiled onto {@link TinyBertHost}: LoRA (rank 2, alpha 4)
 * on the query and value projections of both layers and a 2-label head (mean and first-token
 * pooling). Every
 * gradient the step exposes ({@code <param>.grad}) is compared element by element with central
 * differences of its {@code loss} output, and the AdamW update with a hand computation.
 */
class TrainStepGradientTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final long[] BS = {2, 5};
  private static final long[] INPUT_IDS = {3, 17, 42, 8, 1, 5, 9, 33, 0, 0};
  private static final long[] MASK = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  private static final long[] TOKEN_TYPES = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
  private static final long[] LABELS = {1, 0};
  private static final float LR = 0.1f;

  /** A compiled graft with its loaded training session and parameter values. */
  private static final class Fixture {
    final CompiledGraft graft;
    final List<Parameter> params;
    final Map<String, float[]> values = new LinkedHashMap<>();
    final List<OnnxTensor> hostWeights = new ArrayList<>();
    final OrtSession train;

    Fixture(ClassificationSpec.Pooling pooling) throws OrtException {
      Graph hostGraph = TinyBertHost.graph(2024);
      HostModel host = new HostModel("tiny", dev.graft.dsl.ir.OnnxExport.write(hostGraph, "tiny"), "sha");
      GraftSpec spec = new GraftSpec("Tiny", "tiny",
          List.of(Adapters.lora(".*/(query|value)/MatMul", 2, 4)),
          new ClassificationSpec(2, pooling, "", null), AdamWSpec.DEFAULT, null);
      graft = GraftCompiler.compile(spec, host, true).orThrow();
      params = graft.manifest().getParametersList();
      Random r = new Random(7);
      for (Parameter p : params) {
        float[] v = new float[(int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b)];
        double scale = switch (p.getRole()) {
          case LORA_A -> 0.5;
          case LORA_B -> 0.3; // non-zero, or A's gradient would be exactly zero
          case HEAD_WEIGHT -> 0.5;
          default -> 0.1;
        };
        for (int i = 0; i < v.length; i++) {
          v[i] = (float) (scale * r.nextGaussian());
        }
        values.put(p.getName(), v);
      }
      OrtSession.SessionOptions options = new OrtSession.SessionOptions();
      Map<String, OnnxTensorLike> external = new HashMap<>();
      for (String name : graft.manifest().getHostInitializersList()) {
        OnnxTensor t = tensorOf(hostGraph.initializers().get(name));
        hostWeights.add(t);
        external.put(name, t);
      }
      options.addExternalInitializers(external);
      train = ENV.createSession(graft.train().toByteArray(), options);
    }

    /** Runs the training step with the parameter values given (others from {@link #values}). */
    Map<String, float[]> run(Map<String, float[]> override, Set<String> outputs) throws OrtException {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      try {
        feeds.put("input_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(INPUT_IDS), BS));
        feeds.put("attention_mask", OnnxTensor.createTensor(ENV, LongBuffer.wrap(MASK), BS));
        feeds.put("token_type_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(TOKEN_TYPES), BS));
        feeds.put("labels", OnnxTensor.createTensor(ENV, LongBuffer.wrap(LABELS), new long[] {2}));
        feeds.put("step", OnnxTensor.createTensor(ENV, FloatBuffer.wrap(new float[] {1f}), new long[0]));
        feeds.put("learning_rate", OnnxTensor.createTensor(ENV, FloatBuffer.wrap(new float[] {LR}), new long[0]));
        for (Parameter p : params) {
          float[] v = override.getOrDefault(p.getName(), values.get(p.getName()));
          feeds.put(p.getName(), OnnxTensor.createTensor(ENV, FloatBuffer.wrap(v), shape(p)));
          feeds.put(p.getName() + ".adam_m", OnnxTensor.createTensor(ENV, FloatBuffer.wrap(new float[v.length]), shape(p)));
          feeds.put(p.getName() + ".adam_v", OnnxTensor.createTensor(ENV, FloatBuffer.wrap(new float[v.length]), shape(p)));
        }
        try (OrtSession.Result r = train.run(feeds, outputs)) {
          Map<String, float[]> out = new LinkedHashMap<>();
          for (String o : outputs) {
            FloatBuffer b = ((OnnxTensor) r.get(o).orElseThrow()).getFloatBuffer();
            float[] f = new float[b.remaining()];
            b.get(f);
            out.put(o, f);
          }
          return out;
        }
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }

    float loss(String param, float[] v) throws OrtException {
      return run(Map.of(param, v), Set.of("loss")).get("loss")[0];
    }

    void close() throws OrtException {
      train.close();
      hostWeights.forEach(OnnxTensor::close);
    }
  }

  private static final Map<ClassificationSpec.Pooling, Fixture> FIXTURES = new EnumMap<>(ClassificationSpec.Pooling.class);

  private static synchronized Fixture fixture(ClassificationSpec.Pooling pooling) throws OrtException {
    Fixture f = FIXTURES.get(pooling);
    if (f == null) {
      f = new Fixture(pooling);
      FIXTURES.put(pooling, f);
    }
    return f;
  }

  @AfterAll
  static void close() throws OrtException {
    for (Fixture f : FIXTURES.values()) {
      f.close();
    }
    FIXTURES.clear();
  }

  private static OnnxTensor tensorOf(TensorProto t) throws OrtException {
    long[] shape = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    if (t.getDataType() == TensorType.INT64) {
      return OnnxTensor.createTensor(ENV, LongBuffer.wrap(Tensors.readLongs(t).stream().mapToLong(Long::longValue).toArray()), shape);
    }
    double[] d = Tensors.readDoubles(t);
    float[] f = new float[d.length];
    for (int i = 0; i < d.length; i++) {
      f[i] = (float) d[i];
    }
    return OnnxTensor.createTensor(ENV, FloatBuffer.wrap(f), shape);
  }

  private static long[] shape(Parameter p) {
    return p.getShapeList().stream().mapToLong(Long::longValue).toArray();
  }

  @ParameterizedTest
  @EnumSource(ClassificationSpec.Pooling.class)
  void stepHasTheExpectedParametersAndOutputs(ClassificationSpec.Pooling pooling) throws OrtException {
    Fixture f = fixture(pooling);
    List<Parameter> params = f.params;
    List<String> names = params.stream().map(Parameter::getName).toList();
    assertEquals(List.of(
        "encoder.layer.0.attention.self.query.lora_A", "encoder.layer.0.attention.self.query.lora_B",
        "encoder.layer.0.attention.self.value.lora_A", "encoder.layer.0.attention.self.value.lora_B",
        "encoder.layer.1.attention.self.query.lora_A", "encoder.layer.1.attention.self.query.lora_B",
        "encoder.layer.1.attention.self.value.lora_A", "encoder.layer.1.attention.self.value.lora_B",
        "classifier.weight", "classifier.bias"), names);
    assertTrue(f.graft.manifest().getHostInitializersList().contains("embeddings.word_embeddings.weight"));
    assertTrue(f.graft.manifest().getHostInitializersList().contains("encoder.layer.1.intermediate.dense.weight"));
    Set<String> outs = f.train.getOutputNames();
    for (String n : names) {
      assertTrue(outs.containsAll(List.of(n + ".grad", n + ".next", n + ".adam_m.next", n + ".adam_v.next")), n);
    }
    float loss = f.run(Map.of(), Set.of("loss")).get("loss")[0];
    assertTrue(loss > 0.05 && loss < 5, "a plausible 2-class cross-entropy: " + loss);
  }

  /**
   * Every element of every gradient against central differences of the loss in float32, h =
   * 1e-2 (the exact float32 difference of the perturbed values is the divisor). Pass when
   * |analytic − numeric| ≤ 1e-3 + 1e-2·|numeric| element-wise and the relative L2 error per
   * parameter is ≤ 1e-2.
   */
  @ParameterizedTest
  @EnumSource(ClassificationSpec.Pooling.class)
  void everyGradientMatchesCentralDifferences(ClassificationSpec.Pooling pooling) throws OrtException {
    Fixture f = fixture(pooling);
    List<Parameter> params = f.params;
    Set<String> gradOutputs = new LinkedHashSet<>();
    params.forEach(p -> gradOutputs.add(p.getName() + GraftCompiler.GRADIENT_SUFFIX));
    Map<String, float[]> grads = f.run(Map.of(), gradOutputs);
    double h = 1e-2;
    StringBuilder failures = new StringBuilder();
    StringBuilder stats = new StringBuilder();
    for (Parameter p : params) {
      float[] base = f.values.get(p.getName());
      float[] analytic = grads.get(p.getName() + GraftCompiler.GRADIENT_SUFFIX);
      assertEquals(base.length, analytic.length, p.getName());
      double errSq = 0;
      double normSq = 0;
      double maxErr = 0;
      for (int i = 0; i < base.length; i++) {
        float[] plus = base.clone();
        float[] minus = base.clone();
        plus[i] = (float) (base[i] + h);
        minus[i] = (float) (base[i] - h);
        double numeric = (f.loss(p.getName(), plus) - (double) f.loss(p.getName(), minus)) / ((double) plus[i] - minus[i]);
        double err = Math.abs(analytic[i] - numeric);
        errSq += err * err;
        normSq += numeric * numeric;
        maxErr = Math.max(maxErr, err);
        if (!(err <= 1e-3 + 1e-2 * Math.abs(numeric))) {
          failures.append(String.format("%n  %s[%d]: analytic %.6g, numeric %.6g", p.getName(), i, analytic[i], numeric));
        }
      }
      double rel = Math.sqrt(errSq / normSq);
      stats.append(String.format("%n  %s: |grad| %.3g, max err %.3g, rel L2 err %.3g", p.getName(), Math.sqrt(normSq), maxErr, rel));
      if (!(rel <= 1e-2)) {
        failures.append(String.format("%n  %s: relative L2 error %.3g", p.getName(), rel));
      }
      assertTrue(normSq > 1e-6, "gradient of " + p.getName() + " is not negligible: " + stats);
    }

    assertEquals("", failures.toString(), "gradients differ from central differences:" + stats);
  }

  /**
   * The training step's forward pass is the inference graph's (no LoRA dropout here): same
   * logits to 1e-6, and its loss is the mean cross-entropy of those logits against the labels.
   */
  @ParameterizedTest
  @EnumSource(ClassificationSpec.Pooling.class)
  void trainingForwardMatchesInferenceAndLossIsCrossEntropy(ClassificationSpec.Pooling pooling) throws OrtException {
    Fixture f = fixture(pooling);
    Map<String, float[]> t = f.run(Map.of(), Set.of("logits", "loss"));
    Set<String> inInference = new java.util.HashSet<>();
    f.graft.inference().getGraph().getInitializerList().forEach(i -> inInference.add(i.getName()));
    OrtSession.SessionOptions options = new OrtSession.SessionOptions();
    Map<String, OnnxTensorLike> external = new HashMap<>();
    for (int i = 0; i < f.graft.manifest().getHostInitializersCount(); i++) {
      String name = f.graft.manifest().getHostInitializers(i);
      if (inInference.contains(name)) {
        external.put(name, f.hostWeights.get(i));
      }
    }
    options.addExternalInitializers(external);
    float[] logits;
    try (OrtSession inference = ENV.createSession(f.graft.inference().toByteArray(), options)) {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      feeds.put("input_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(INPUT_IDS), BS));
      feeds.put("attention_mask", OnnxTensor.createTensor(ENV, LongBuffer.wrap(MASK), BS));
      feeds.put("token_type_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(TOKEN_TYPES), BS));
      for (Parameter p : f.params) {
        feeds.put(p.getName(), OnnxTensor.createTensor(ENV, FloatBuffer.wrap(f.values.get(p.getName())), shape(p)));
      }
      try (OrtSession.Result r = inference.run(feeds, Set.of("logits"))) {
        FloatBuffer b = ((OnnxTensor) r.get("logits").orElseThrow()).getFloatBuffer();
        logits = new float[b.remaining()];
        b.get(logits);
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }
    assertEquals(4, logits.length);
    double ce = 0;
    for (int b = 0; b < 2; b++) {
      assertEquals(logits[2 * b], t.get("logits")[2 * b], 1e-6);
      assertEquals(logits[2 * b + 1], t.get("logits")[2 * b + 1], 1e-6);
      double z0 = logits[2 * b];
      double z1 = logits[2 * b + 1];
      double max = Math.max(z0, z1);
      double lse = max + Math.log(Math.exp(z0 - max) + Math.exp(z1 - max));
      ce += lse - (LABELS[b] == 0 ? z0 : z1);
    }
    assertEquals(ce / 2, t.get("loss")[0], 1e-5);
  }

  /**
   * With zero moments at step 1, m̂ = g and v̂ = g², so p' = p − lr·(g/(|g|+ε) + λ·p) for
   * weights and p − lr·g/(|g|+ε) for the bias. Tolerance 2e-6 (float32 rounding of the
   * bias corrections is ≈ 1e-5 relative on the ≈ lr-sized update).
   */
  @ParameterizedTest
  @EnumSource(ClassificationSpec.Pooling.class)
  void adamWUpdateMatchesHandComputation(ClassificationSpec.Pooling pooling) throws OrtException {
    Fixture f = fixture(pooling);
    List<Parameter> params = f.params;
    AdamWSpec o = AdamWSpec.DEFAULT;
    Set<String> outs = new LinkedHashSet<>();
    for (Parameter p : params) {
      String n = p.getName();
      outs.addAll(List.of(n + ".grad", n + ".next", n + ".adam_m.next", n + ".adam_v.next"));
    }
    Map<String, float[]> r = f.run(Map.of(), outs);
    int checked = 0;
    for (Parameter p : params) {
      String n = p.getName();
      boolean decays = p.getRole() != ParameterRole.HEAD_BIAS;
      float[] w = f.values.get(n);
      float[] g = r.get(n + ".grad");
      for (int i = 0; i < w.length; i++) {
        double gi = g[i];
        assertEquals((1 - o.beta1()) * gi, r.get(n + ".adam_m.next")[i], 1e-6 * Math.abs(gi) + 1e-12, n + " m[" + i + "]");
        assertEquals((1 - o.beta2()) * gi * gi, r.get(n + ".adam_v.next")[i], 1e-5 * gi * gi + 1e-15, n + " v[" + i + "]");
        double expected = w[i] - LR * (gi / (Math.abs(gi) + o.epsilon()) + (decays ? o.weightDecay() * w[i] : 0));
        assertEquals(expected, r.get(n + ".next")[i], 2e-6, n + ".next[" + i + "] (decay " + decays + ")");
        checked++;
      }
    }
    assertEquals(params.stream().mapToLong(p -> f.values.get(p.getName()).length).sum(), checked);
  }
}
