package dev.graft.dsl.continual;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.data.Batch;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.train.Trainer;
import dev.graft.testing.TinyBertHost;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** SEMA's detection (descriptor z-scores), expansion and freezing across tasks on a tiny host. */
class SemaTest {
  /** Gaussian rows {@code [n][d]}: mean {@code shift} on every axis, axis i scaled by {@code 1/(i+1)}. */
  private static float[][] gaussian(int n, int d, double shift, long seed) {
    Random r = new Random(seed);
    float[][] x = new float[n][d];
    for (float[] row : x) {
      for (int i = 0; i < d; i++) {
        row[i] = (float) (shift + r.nextGaussian() / (i + 1));
      }
    }
    return x;
  }

  @Test
  void closedFormDescriptorScoresSameDistributionNearZeroAndShiftedDataHigh() {
    Descriptor d = Descriptor.fitClosedForm(gaussian(400, 6, 0, 1), 2, 7);
    double own = d.zScore(gaussian(400, 6, 0, 1));
    double same = d.zScore(gaussian(400, 6, 0, 2));
    double shifted = d.zScore(gaussian(400, 6, 1.5, 3));
    System.out.printf("descriptor mean |z|: fitting data %.3f, same distribution %.3f, shifted %.3f%n", own, same,
        shifted);
    // |z| of the fitting data averages below 1 (the mean absolute deviation over the standard deviation)
    assertTrue(own > 0.3 && own < 1.0, "fitting data's mean |z| " + own);
    assertEquals(own, same, 0.2, "same-distribution mean |z|");
    assertTrue(shifted > 5, "shifted z " + shifted);
    // μ is the fitting data's mean error, σ their sample standard deviation
    double[] e = d.errors(gaussian(400, 6, 0, 1));
    double mu = java.util.Arrays.stream(e).average().orElseThrow();
    double var = java.util.Arrays.stream(e).map(v -> (v - mu) * (v - mu)).sum() / (e.length - 1);
    assertEquals(mu, d.errorMean(), 1e-12);
    assertEquals(Math.sqrt(var), d.errorStd(), 1e-12);
    double[] z = d.zScores(gaussian(400, 6, 1.5, 3));
    assertEquals(Math.abs(d.errors(gaussian(400, 6, 1.5, 3))[7] - mu) / d.errorStd(), z[7], 1e-12);
    // the basis is the two widest axes (0 and 1): a residual lives on axes 2..5
    assertTrue(Math.abs(d.encoder()[0][0]) > 0.95, "first direction " + java.util.Arrays.toString(d.encoder()[0]));
  }

  private static double meanError(Descriptor d, float[][] x) {
    return java.util.Arrays.stream(d.errors(x)).average().orElseThrow();
  }

  @Test
  void sgdDescriptorReducesReconstructionLossTowardTheClosedFormAndDetectsShiftedData() {
    float[][] x = gaussian(400, 6, 0, 1);
    double start = meanError(Descriptor.initial(2, 6, 7), x);
    Descriptor d = Descriptor.fit(x, 2, Descriptor.Fit.SGD, Descriptor.Schedule.REFERENCE, 7);
    double trained = meanError(d, x);
    double optimum = meanError(Descriptor.fitClosedForm(x, 2, 7), x);
    double own = d.zScore(x);
    double same = d.zScore(gaussian(400, 6, 0, 2));
    double shifted = d.zScore(gaussian(400, 6, 1.5, 3));
    System.out.printf("SGD descriptor: error %.4f at the start, %.4f trained, %.4f optimum; mean |z| fitting %.3f,"
        + " same distribution %.3f, shifted %.3f%n", start, trained, optimum, own, same, shifted);
    assertTrue(trained < start / 2, "SGD did not reduce the error: " + start + " -> " + trained);
    // the reference's schedule stops short of the optimum; a long one reaches it: both fit the same model
    assertTrue(trained >= optimum - 1e-9, "trained " + trained + " below the optimum " + optimum);
    double converged = meanError(Descriptor.fit(x, 2, Descriptor.Fit.SGD, new Descriptor.Schedule(300, 0.02, 0.9, 0, 32, 500), 7), x);
    System.out.printf("SGD descriptor, 300 epochs: error %.5f, optimum %.5f%n", converged, optimum);
    assertTrue(converged >= optimum - 1e-9 && converged < 1.02 * optimum, "converged " + converged + ", optimum " + optimum);
    assertTrue(own > 0.3 && own < 1.2, "fitting data's mean |z| " + own);
    assertEquals(own, same, 0.25, "same-distribution mean |z|");
    assertTrue(shifted > 5, "shifted z " + shifted);
  }

  /**
   * Three epochs of full-batch SGD (so two momentum steps and the cosine's 0.01, 0.0075, 0.0025)
   * from given weights equal PyTorch's {@code nn.Linear(3, 2)}, {@code nn.Linear(2, 3)}, {@code
   * optim.SGD(lr=0.01, momentum=0.9, weight_decay=5e-4)}, {@code CosineAnnealingLR(T_max=3)} on the
   * same rows (float64; μ, σ from the 12 per-example losses before each step, {@code std} n − 1).
   */
  @Test
  void sgdDescriptorStepsMatchPyTorch() {
    float[][] x = {{0.5f, -1.0f, 2.0f}, {1.5f, 0.25f, -0.5f}, {-0.75f, 1.0f, 0.0f}, {0.3f, 0.6f, -1.2f}};
    Descriptor start = new Descriptor(new double[][] {{0.1, -0.2, 0.3}, {0.4, 0.05, -0.1}}, new double[] {0.01, -0.02},
        new double[][] {{0.2, 0.3, -0.5}, {-0.1, 0.4, 0.1}}, new double[] {0.05, 0.0, -0.05}, 0, 1);
    Descriptor d = Descriptor.train(x, start, new Descriptor.Schedule(3, 0.01, 0.9, 5e-4, 4, 500), 1);
    double tol = 1e-7; // the rows are float32 here, float64 in PyTorch
    assertArrayEquals(new double[] {0.10102737735656409, -0.18714348369436004, 0.27662529911354933}, d.encoder()[0], tol);
    assertArrayEquals(new double[] {0.3957345146033654, 0.05420000488158873, -0.10276006624353741}, d.encoder()[1], tol);
    assertArrayEquals(new double[] {0.011048875162109126, -0.01922174655698299}, d.encoderBias(), tol);
    assertArrayEquals(new double[] {0.201143444605478, 0.29158238602846526, -0.4857886076455391}, d.decoder()[0], tol);
    assertArrayEquals(new double[] {-0.09350997013408319, 0.3996304330700549, 0.09558057709755902}, d.decoder()[1], tol);
    assertArrayEquals(new double[] {0.057117445203739285, 0.0030624504949683376, -0.04740620150219582}, d.decoderBias(), tol);
    assertEquals(1.2249310899573593, d.errorMean(), tol);
    assertEquals(0.8068513543128315, d.errorStd(), tol);
    assertEquals(1.2019005234421398, meanError(d, x), tol);
  }

  @Test
  void theRecordsWindowKeepsTheLastLossesAndBadSchedulesAreR354() {
    float[][] x = gaussian(10, 3, 0, 1);
    Descriptor start = Descriptor.initial(2, 3, 3);
    // one batch of all ten rows, so every loss is taken before the only step, at the start's weights
    Descriptor all = Descriptor.train(x, start, new Descriptor.Schedule(1, 0.01, 0, 0, 10, 10), 5);
    Descriptor last2 = Descriptor.train(x, start, new Descriptor.Schedule(1, 0.01, 0, 0, 10, 2), 5);
    double[] e = start.errors(x);
    double mu = java.util.Arrays.stream(e).average().orElseThrow();
    assertEquals(mu, all.errorMean(), 1e-12, "ten records: every row's loss before the step");
    boolean pair = false;
    for (int a = 0; a < e.length; a++) {
      for (int b = a + 1; b < e.length; b++) {
        pair |= Math.abs((e[a] + e[b]) / 2 - last2.errorMean()) < 1e-12
            && Math.abs(Math.abs(e[a] - e[b]) / Math.sqrt(2) - last2.errorStd()) < 1e-12;
      }
    }
    assertTrue(pair, "two records: μ " + last2.errorMean() + " and σ " + last2.errorStd() + " are not two rows' losses");
    assertTrue(Math.abs(last2.errorMean() - mu) > 1e-6, "two records gave the mean of all ten");
    GraftException bad = assertThrows(GraftException.class, () -> new Descriptor.Schedule(20, 0.01, 1.0, 5e-4, 32, 500));
    assertEquals(RuntimeErrorCode.DESCRIPTOR_OPTIONS, bad.getErrorCode());
    assertTrue(bad.getMessage().contains("[GRAFT-R354]") && bad.getMessage().contains("momentum must be in [0, 1), got 1.0"),
        bad.getMessage());
    GraftException rows = assertThrows(GraftException.class,
        () -> Descriptor.fit(gaussian(1, 3, 0, 1), 2, Descriptor.Fit.SGD, Descriptor.Schedule.REFERENCE, 1));
    assertTrue(rows.getMessage().contains("[GRAFT-R354]") && rows.getMessage().contains("got 1"), rows.getMessage());
  }

  /** Sentences of 6 tokens drawn from ids {@code [from, from + 8)}, the label being whether the first id is in the upper half. */
  private static List<Example> task(int n, int from, long seed) {
    Random r = new Random(seed);
    List<Example> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      long[] ids = new long[6];
      for (int j = 0; j < ids.length; j++) {
        ids[j] = from + r.nextInt(8);
      }
      Map<String, long[]> f = new HashMap<>();
      f.put("input_ids", ids);
      f.put("attention_mask", new long[] {1, 1, 1, 1, 1, 1});
      f.put("token_type_ids", new long[6]);
      out.add(new Example(f, ids[0] >= from + 4 ? 1 : 0));
    }
    return out;
  }

  @TempDir static Path hostDir;

  /**
   * The loop on the tiny host with descriptors fitted by {@code fit}. The tests of the loop's
   * mechanics (expansion per layer, freezing) use the closed form: on 96 examples of the tiny host it
   * separates the tasks more sharply than 20 epochs of SGD (high ids: layer 0 z 8.0 closed form, 1.5
   * SGD); the SGD fit itself is checked on its own above, and inside the loop below.
   */
  private static Sema sema(Descriptor.Fit fit) throws IOException {
    return semaBuilder().descriptorFit(fit).build();
  }

  private static Sema.Builder semaBuilder() throws IOException {
    Path hostFile = hostDir.resolve("tiny.onnx");
    Files.write(hostFile, TinyBertHost.host(5).model().toByteArray());
    return Sema.builder(HostModel.read(hostFile)).modelOptions(ModelOptions.defaults().withHost(hostFile)).layers(List.of(0, 1)).reduction(2).descriptorRank(2)
        // batches of 8 rather than 32: 96 examples give the reference's 20 epochs too few steps otherwise
        .descriptorSchedule(new Descriptor.Schedule(20, 0.01, 0.9, 5e-4, 8, 500))
        .trainer(Trainer.builder().batchSize(8).epochs(2).learningRate(0.01f).seed(1).progress(null).build());
  }

  @Test
  void aShiftedTaskExpandsEveryLayerAndLeavesTheEarlierAdaptersBitForBit() throws IOException {
    try (Sema s = sema(Descriptor.Fit.CLOSED_FORM)) {
      Sema.TaskReport first = s.learn("low ids", task(96, 1, 1), task(32, 1, 2));
      assertEquals(List.of(0, 1), first.expanded());
      assertEquals(List.of(1, 1), s.pools());
      Map<String, float[]> before = s.current().getParameterValues();
      Sema.TaskReport second = s.learn("high ids", task(96, 30, 3), task(32, 30, 4));
      System.out.println("shifted task: " + second);
      second.zScores().forEach(z -> assertTrue(z.get(0) > 2.0, "z " + z));
      second.detectionScores().forEach(z -> assertTrue(z > 2.0, "detection " + z));
      assertEquals(List.of(0, 1), second.expanded());
      assertEquals(List.of(2, 2), s.pools());
      Map<String, float[]> after = s.current().getParameterValues();
      int checked = 0;
      for (var e : before.entrySet()) {
        if (e.getKey().contains(".sema.0.")) {
          assertArrayEquals(e.getValue(), after.get(e.getKey()), e.getKey() + " changed in the second task");
          checked++;
        }
      }
      assertEquals(8, checked, "two layers' first adapters, four tensors each");
      // the new adapters trained: their up projection left its zero start
      float[] up = after.get("encoder.layer.0.output.sema.1.up.weight");
      double norm = 0;
      for (float v : up) {
        norm += v * v;
      }
      assertTrue(norm > 0, "the new adapter did not train");
      assertEquals(2, s.descriptors().get(0).size());
    }
  }

  @Test
  void aTaskFromTheSameDistributionDoesNotExpand() throws IOException {
    try (Sema s = sema(Descriptor.Fit.SGD)) {
      s.learn("low ids", task(96, 1, 1), task(32, 1, 2));
      Sema.TaskReport again = s.learn("low ids again", task(96, 1, 5), task(32, 1, 6));
      System.out.println("same-distribution task: " + again);
      again.zScores().forEach(z -> assertTrue(z.get(0) < 2.0, "z " + z));
      again.detectionScores().forEach(z -> assertTrue(z < 2.0, "detection " + z));
      assertEquals(List.of(), again.expanded());
      assertEquals(List.of(1, 1), s.pools());
    }
  }

  /** Examples of {@link #task} with the last {@code padded} tokens of every other one masked out. */
  private static List<Example> padded(List<Example> examples, int padded) {
    List<Example> out = new ArrayList<>();
    for (int i = 0; i < examples.size(); i++) {
      Map<String, long[]> f = new HashMap<>(examples.get(i).features());
      long[] mask = f.get("attention_mask").clone();
      if (i % 2 == 1) {
        for (int t = mask.length - padded; t < mask.length; t++) {
          mask[t] = 0;
        }
      }
      f.put("attention_mask", mask);
      out.add(new Example(f, examples.get(i).label()));
    }
    return out;
  }

  /**
   * The plain host's value of each of {@code tensors} (its inner tensors, made outputs here by hand),
   * averaged over the tokens each example's mask keeps, in double: features computed without Graft.
   */
  private static Map<String, double[][]> hostFeatures(List<Example> examples, List<String> tensors) throws Exception {
    ModelProto.Builder host = TinyBertHost.host(5).model().toBuilder();
    for (String t : tensors) {
      host.getGraphBuilder().addOutput(ValueInfoProto.newBuilder().setName(t).setType(TypeProto.newBuilder()
          .setTensorType(TypeProto.Tensor.newBuilder().setElemType(1))));
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, double[][]> out = new HashMap<>();
    try (OrtSession s = env.createSession(host.build().toByteArray(), new OrtSession.SessionOptions())) {
      Map<String, OnnxTensor> feed = new HashMap<>();
      long[][] mask = examples.stream().map(e -> e.features().get("attention_mask")).toArray(long[][]::new);
      for (String name : s.getInputNames()) {
        feed.put(name, OnnxTensor.createTensor(env, examples.stream().map(e -> e.features().get(name))
            .toArray(long[][]::new)));
      }
      try (OrtSession.Result r = s.run(feed, new java.util.HashSet<>(tensors))) {
        for (String t : tensors) {
          float[][][] h = (float[][][]) r.get(t).orElseThrow().getValue();
          double[][] mean = new double[h.length][h[0][0].length];
          for (int i = 0; i < h.length; i++) {
            int kept = 0;
            for (int p = 0; p < h[i].length; p++) {
              if (mask[i][p] == 1) {
                kept++;
                for (int j = 0; j < mean[i].length; j++) {
                  mean[i][j] += h[i][p][j];
                }
              }
            }
            for (int j = 0; j < mean[i].length; j++) {
              mean[i][j] /= kept;
            }
          }
          out.put(t, mean);
        }
      } finally {
        feed.values().forEach(OnnxTensor::close);
      }
    }
    return out;
  }

  private static AdapterModel tinySemaModel() throws IOException {
    Path hostFile = hostDir.resolve("tiny.onnx");
    Files.write(hostFile, TinyBertHost.host(5).model().toByteArray());
    CompiledGraft graft = Graft.host(HostModel.read(hostFile)).name("SemaFeatures")
        .sema("", o -> o.reduction(2).layers(List.of(0, 1))).classification(2).compile();
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(hostFile).withSeed(3));
  }

  /** The site input each layer's pool records, in layer order. */
  private static List<String> siteInputs(AdapterModel m) {
    return m.getManifest().getParametersList().stream().filter(p -> p.getName().endsWith(".sema.0.down.weight"))
        .sorted(java.util.Comparator.comparing(p -> p.getName())).map(p -> p.getSiteInput()).toList();
  }

  @Test
  void siteFeaturesAreEachLayersOwnInputAveragedOverKeptTokensAsThePlainHostComputesThem() throws Exception {
    List<Example> examples = padded(task(12, 1, 7), 2);
    try (AdapterModel m = tinySemaModel()) {
      List<String> tensors = siteInputs(m);
      assertEquals(2, tensors.size());
      assertTrue(tensors.get(0).contains("layer.0") && tensors.get(1).contains("layer.1"), "site inputs " + tensors);
      List<String> names = m.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
      // two batches, so rows come back in example order across batches
      Map<String, float[][]> read = m.siteFeatures(List.of(Batch.of(examples.subList(0, 5), names),
          Batch.of(examples.subList(5, 12), names)), new java.util.TreeSet<>(tensors));
      // the pools add nothing at the start (up projections zero), so each layer's input is the plain host's
      Map<String, double[][]> expected = hostFeatures(examples, tensors);
      double between = 0;
      for (String t : tensors) {
        assertEquals(12, read.get(t).length);
        for (int i = 0; i < 12; i++) {
          for (int j = 0; j < TinyBertHost.HIDDEN; j++) {
            assertEquals(expected.get(t)[i][j], read.get(t)[i][j], 1e-5, t + " example " + i + " feature " + j);
          }
        }
      }
      for (int i = 0; i < 12; i++) {
        for (int j = 0; j < TinyBertHost.HIDDEN; j++) {
          between = Math.max(between, Math.abs(read.get(tensors.get(0))[i][j] - read.get(tensors.get(1))[i][j]));
        }
      }
      assertTrue(between > 0.1, "layers 0 and 1 read the same features (largest difference " + between + ")");
      // a masked-out token counts: the padded examples' means differ from the unpadded means of the same tokens
      Map<String, double[][]> unpadded = hostFeatures(task(12, 1, 7), tensors);
      assertTrue(Math.abs(unpadded.get(tensors.get(0))[1][0] - read.get(tensors.get(0))[1][0]) > 1e-4);
    }
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(Descriptor.Fit.class)
  void eachLayersDescriptorIsFittedOnItsOwnFeaturesAndScoresANewTaskFromThem(Descriptor.Fit fit) throws Exception {
    List<Example> first = task(96, 1, 1);
    List<Example> second = task(96, 5, 8);
    try (Sema s = sema(fit)) {
      s.learn("low ids", first, task(32, 1, 2));
      List<String> tensors = siteInputs(s.current());
      // layer 0's input comes before any adapter, so the plain host gives it even after training
      double[][] own = hostFeatures(first, tensors.subList(0, 1)).get(tensors.get(0));
      float[][] ownF = new float[own.length][];
      for (int i = 0; i < own.length; i++) {
        ownF[i] = new float[own[i].length];
        for (int j = 0; j < own[i].length; j++) {
          ownF[i][j] = (float) own[i][j];
        }
      }
      Descriptor independent = Descriptor.fit(ownF, 2, fit, new Descriptor.Schedule(20, 0.01, 0.9, 5e-4, 8, 500), 42);
      Descriptor layer0 = s.descriptors().get(0).get(0);
      Descriptor layer1 = s.descriptors().get(1).get(0);
      assertEquals(independent.errorMean(), layer0.errorMean(), 1e-6 * independent.errorMean());
      assertEquals(independent.errorStd(), layer0.errorStd(), 1e-5 * independent.errorStd());
      assertTrue(Math.abs(layer0.decoderBias()[0] - layer1.decoderBias()[0]) > 1e-3, "the layers' descriptors have one mean");
      double[][] next = hostFeatures(second, tensors.subList(0, 1)).get(tensors.get(0));
      float[][] nextF = new float[next.length][];
      for (int i = 0; i < next.length; i++) {
        nextF[i] = new float[next[i].length];
        for (int j = 0; j < next[i].length; j++) {
          nextF[i][j] = (float) next[i][j];
        }
      }
      Sema.TaskReport r = s.learn("overlapping ids", second, task(32, 5, 9));
      System.out.println("overlapping task: " + r);
      assertEquals(independent.zScore(nextF), r.zScores().get(0).get(0), 1e-4, "layer 0's z-score");
      if (fit == Descriptor.Fit.CLOSED_FORM) { // SGD's looser fit scores this task alike at both layers (2.17, 2.14)
        assertTrue(Math.abs(r.zScores().get(0).get(0) - r.zScores().get(1).get(0)) > 0.05,
            "both layers scored alike: " + r.zScores());
      }
    }
  }

  @Test
  void aThresholdBetweenTheLayersScoresExpandsOnlyTheLayerAboveIt() throws Exception {
    List<Double> scores;
    try (Sema s = sema(Descriptor.Fit.CLOSED_FORM)) {
      s.learn("low ids", task(96, 1, 1), task(32, 1, 2));
      scores = s.learn("overlapping ids", task(96, 5, 8), task(32, 5, 9)).detectionScores();
    }
    int higher = scores.get(0) > scores.get(1) ? 0 : 1;
    double threshold = (scores.get(0) + scores.get(1)) / 2;
    System.out.println("detection scores " + scores + ", threshold " + threshold);
    assertTrue(Math.abs(scores.get(0) - scores.get(1)) > 0.1, "scores too close to split: " + scores);
    try (Sema s = semaBuilder().descriptorFit(Descriptor.Fit.CLOSED_FORM).threshold(threshold).build()) {
      s.learn("low ids", task(96, 1, 1), task(32, 1, 2));
      Sema.TaskReport r = s.learn("overlapping ids", task(96, 5, 8), task(32, 5, 9));
      assertEquals(List.of(higher), r.expanded());
      assertEquals(higher == 0 ? List.of(2, 1) : List.of(1, 2), s.pools());
    }
  }

  /** {@link #task} with labels 0, 1, 2: the first id's third of the range. */
  private static List<Example> threeClasses(List<Example> examples, int from) {
    return examples.stream().map(e -> new Example(e.features(), (e.features().get("input_ids")[0] - from) * 3 / 8))
        .toList();
  }

  @Test
  void eachTaskTrainsItsOwnHeadBlockAndEarlierBlocksStayFrozen() throws Exception {
    try (Sema s = sema(Descriptor.Fit.CLOSED_FORM)) {
      s.learn("low ids", task(96, 1, 1), task(32, 1, 2));
      TaskHead.Block first = s.head().block("low ids");
      List<Example> heldOut = threeClasses(task(32, 30, 4), 30);
      Sema.TaskReport second = s.learn("high ids", threeClasses(task(96, 30, 3), 30), heldOut);
      TaskHead.Block again = s.head().block("low ids");
      assertArrayEquals(first.weight(), again.weight(), "the first task's rows changed");
      assertArrayEquals(first.bias(), again.bias());
      TaskHead.Block block = s.head().block("high ids");
      assertEquals(List.of(2, 3), List.of(first.classes(), block.classes()));
      assertEquals(List.of(0, 2), List.of(first.offset(), block.offset()));
      AdapterModel m = s.current();
      assertArrayEquals(block.weight(), m.getParameter("classifier.weight"), "the last block is the model's head");
      // every block's logits through the graph: the model's head set to each block in turn
      List<String> names = m.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
      Map<String, long[][]> inputs = Batch.of(heldOut, names).inputs();
      float[][] own = m.predict(inputs);
      double[][] joined = s.head().logits(m.embed(inputs));
      for (int r = 0; r < own.length; r++) {
        for (int c = 0; c < 3; c++) {
          assertEquals(own[r][c], joined[r][2 + c], 1e-5, "logit " + r + ", " + c);
        }
      }
      List<Example> old = task(32, 1, 2);
      Map<String, long[][]> oldInputs = Batch.of(old, names).inputs();
      float[][] newHead = m.predict(oldInputs);
      try (AdapterModel two = reopenedWithHead(s, first)) {
        float[][] oldHead = two.predict(oldInputs);
        int correct = 0;
        int aware = 0;
        for (int r = 0; r < old.size(); r++) {
          float[] z = {oldHead[r][0], oldHead[r][1], newHead[r][0], newHead[r][1], newHead[r][2]};
          int best = 0;
          for (int c = 1; c < z.length; c++) {
            best = z[c] > z[best] ? c : best;
          }
          correct += best == old.get(r).label() ? 1 : 0;
          aware += (oldHead[r][1] > oldHead[r][0] ? 1 : 0) == old.get(r).label() ? 1 : 0;
        }
        System.out.printf("first task after the second: task-aware %.4f, class-incremental %.4f%n",
            s.taskAccuracy("low ids", old), s.accuracy("low ids", old));
        assertEquals((double) correct / old.size(), s.accuracy("low ids", old), 1e-12, "class-incremental");
        assertEquals((double) aware / old.size(), s.taskAccuracy("low ids", old), 1e-12, "task-aware");
      }
      assertEquals(second.heldOutAccuracy(), s.taskAccuracy("high ids", heldOut), 1e-12);
    }
  }

  /** A copy of the loop's current model (pools, adapters) with the head set to {@code block}'s two classes. */
  private static AdapterModel reopenedWithHead(Sema s, TaskHead.Block block) throws IOException {
    Path hostFile = hostDir.resolve("tiny.onnx");
    CompiledGraft g = Graft.host(HostModel.read(hostFile)).name("Sema")
        .sema("", o -> o.reduction(2).layers(List.of(0, 1)).poolPerLayer(s.pools())).classification(block.classes())
        .compile();
    AdapterModel m = AdapterModel.open(Graft.graphs(g), ModelOptions.defaults().withHost(hostFile));
    Map<String, float[]> values = s.current().getParameterValues();
    for (var p : m.getParameters()) {
      if (!p.getName().startsWith("classifier.")) {
        m.setParameter(p.getName(), values.get(p.getName()));
      }
    }
    m.setParameter("classifier.weight", block.weight());
    m.setParameter("classifier.bias", block.bias());
    return m;
  }

  @Test
  void badTaskNamesAndLabelsAreR355AndR356() throws Exception {
    try (Sema s = sema(Descriptor.Fit.CLOSED_FORM)) {
      List<Example> oneClass = task(8, 1, 1).stream().map(e -> new Example(e.features(), 0)).toList();
      GraftException one = assertThrows(GraftException.class, () -> s.learn("one", oneClass, List.of()));
      assertEquals(RuntimeErrorCode.SEMA_TASK_LABELS, one.getErrorCode());
      assertTrue(one.getMessage().contains("has one class (label 0 only); expected at least 2"), one.getMessage());
      List<Example> heldOut = List.of(new Example(task(1, 1, 2).get(0).features(), 2));
      GraftException unknown = assertThrows(GraftException.class, () -> s.learn("t", task(16, 1, 1), heldOut));
      assertEquals(RuntimeErrorCode.SEMA_TASK_LABELS, unknown.getErrorCode());
      assertTrue(unknown.getMessage().contains("has classes 0..1") && unknown.getMessage().contains("labelled 2"),
          unknown.getMessage());
      s.learn("low ids", task(32, 1, 1), task(8, 1, 2));
      GraftException repeated = assertThrows(GraftException.class, () -> s.learn("low ids", task(32, 1, 3), List.of()));
      assertEquals(RuntimeErrorCode.SEMA_TASK_NAME, repeated.getErrorCode());
      assertTrue(repeated.getMessage().contains("[GRAFT-R356]") && repeated.getMessage().contains("[low ids]"),
          repeated.getMessage());
      GraftException missing = assertThrows(GraftException.class, () -> s.accuracy("high ids", task(4, 1, 3)));
      assertEquals(RuntimeErrorCode.SEMA_TASK_NAME, missing.getErrorCode());
      GraftException label = assertThrows(GraftException.class, () -> s.taskAccuracy("low ids", heldOut));
      assertEquals(RuntimeErrorCode.SEMA_TASK_LABELS, label.getErrorCode());
    }
  }

  @Test
  void nonFiniteSiteFeaturesAreR353() throws Exception {
    try (AdapterModel m = tinySemaModel()) {
      List<String> tensors = siteInputs(m);
      String down = "encoder.layer.0.output.sema.0.down.weight";
      float[] nan = new float[m.getParameterValues().get(down).length];
      java.util.Arrays.fill(nan, Float.NaN);
      m.setParameter(down, nan);
      List<String> names = m.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
      GraftException e = assertThrows(GraftException.class,
          () -> m.siteFeatures(List.of(Batch.of(task(4, 1, 3), names)), new java.util.TreeSet<>(tensors)));
      assertEquals(RuntimeErrorCode.SITE_FEATURES, e.getErrorCode());
      assertTrue(e.getMessage().contains("[GRAFT-R353]") && e.getMessage().contains(tensors.get(1)), e.getMessage());
    }
  }
}
