package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.train.LearningRate;
import dev.graft.runtime.train.NonFinitePolicy;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainerTest;
import dev.graft.runtime.train.TrainingListener;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.testing.TinyBertHost;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Finding 3 of issue 15: a training step that is not finite is refused and not committed, inputs
 * that would poison the state are refused, the Trainer's policies, and checkpoints that are never
 * written from a non-finite state. The compiled graft is LoRA on the tiny BERT host (with the
 * graph's finite guard); the Trainer's policies run on the hand-built tiny graph.
 */
class NonFiniteTrainingTest {
  private static final long[][] IDS = {{3, 7, 12, 8, 1}, {5, 9, 13, 0, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}};
  private static final long[] LABELS = {1, 0};
  private static CompiledGraft graft;
  private static Path hostFile;

  @TempDir static Path hostDir;
  @TempDir Path dir;

  @BeforeAll
  static void compile() throws Exception {
    hostFile = hostDir.resolve("tiny.onnx");
    Files.write(hostFile, TinyBertHost.host(3).model().toByteArray());
    graft = Graft.host(HostModel.read(hostFile)).adapter("lora", "", o -> {}).classification(2).compile();
  }

  private static AdapterModel open() {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(7).withHost(hostFile));
  }

  private static Map<String, long[][]> inputs(long[][] mask) {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", mask);
    m.put("token_type_ids", new long[2][5]);
    return m;
  }

  private static String nameOf(AdapterModel model, ParameterRole role) {
    return model.getParameters().stream().filter(p -> p.getRole() == role).findFirst().orElseThrow().getName();
  }

  /** Every parameter and both moments, as they are now. */
  private static Map<String, float[]> state(AdapterModel model) {
    Map<String, float[]> out = new TreeMap<>();
    for (Parameter p : model.getParameters()) {
      out.put(p.getName(), model.getParameter(p.getName()));
      out.put(p.getName() + ".adam_m", model.optimizerState(p.getName(), false));
      out.put(p.getName() + ".adam_v", model.optimizerState(p.getName(), true));
    }
    return out;
  }

  private static void assertSameState(Map<String, float[]> expected, Map<String, float[]> actual) {
    assertEquals(expected.keySet(), actual.keySet());
    expected.forEach((k, v) -> assertArrayEquals(v, actual.get(k), 0f, k));
  }

  private static void assertFiniteState(AdapterModel model) {
    state(model).forEach((k, v) -> {
      for (float x : v) {
        assertTrue(Float.isFinite(x), k + " holds " + x);
      }
    });
  }

  @Test
  void finding3_attentionMaskOfSevenIsRefused() {
    try (AdapterModel model = open()) {
      model.trainStep(inputs(MASK), LABELS, 1e-3f);
      Map<String, float[]> before = state(model);
      long[][] seven = {{1, 1, 7, 1, 1}, {1, 1, 1, 0, 0}};
      GraftException e = assertThrows(GraftException.class, () -> model.trainStep(inputs(seven), LABELS, 1e-3f));
      assertEquals(RuntimeErrorCode.ARGUMENT, e.getErrorCode());
      assertTrue(e.getMessage().contains("'attention_mask' is an attention mask: values must be 0 or 1, got 7 at [0, 2]"),
          e.getMessage());
      long[][] negative = {{1, 1, 1, 1, 1}, {1, -1, 1, 0, 0}};
      assertThrows(GraftException.class, () -> model.predict(inputs(negative)));
      assertSameState(before, state(model));
      assertEquals(1, model.getStep());
      assertTrue(Float.isFinite(model.trainStep(inputs(MASK), LABELS, 1e-3f)));
      assertFiniteState(model);
    }
  }

  @Test
  void finding3_hugeLearningRateDoesNotPoisonParameters() {
    try (AdapterModel model = open()) {
      model.trainStep(inputs(MASK), LABELS, 1e-3f);
      Map<String, float[]> before = state(model);
      for (float rate : new float[] {Float.MAX_VALUE, 1.5f, Float.POSITIVE_INFINITY, Float.NaN, -1e-3f}) {
        GraftException e = assertThrows(GraftException.class, () -> model.trainStep(inputs(MASK), LABELS, rate));
        assertEquals(RuntimeErrorCode.ARGUMENT, e.getErrorCode(), e.getMessage());
        assertTrue(e.getMessage().contains("learning rate must be finite and in [0, 1.0]"), e.getMessage());
        assertSameState(before, state(model));
        assertEquals(1, model.getStep());
      }
      assertThrows(GraftException.class, () -> LearningRate.constant(2f));
      // the largest rate allowed takes a finite step
      assertTrue(Float.isFinite(model.trainStep(inputs(MASK), LABELS, 1f)));
      assertEquals(2, model.getStep());
      assertFiniteState(model);
    }
  }

  /** A NaN loss (a NaN in the head): refused with code R009 and the step number, nothing committed. */
  @Test
  void finding3_aNonFiniteLossIsNotCommitted() {
    try (AdapterModel model = open()) {
      model.trainStep(inputs(MASK), LABELS, 1e-3f);
      model.trainStep(inputs(MASK), LABELS, 1e-3f);
      String head = nameOf(model, ParameterRole.HEAD_WEIGHT);
      float[] good = model.getParameter(head);
      float[] poisoned = good.clone();
      poisoned[0] = Float.NaN;
      model.setParameter(head, poisoned);
      Map<String, float[]> before = state(model);
      NonFiniteStepException e =
          assertThrows(NonFiniteStepException.class, () -> model.trainStep(inputs(MASK), LABELS, 1e-3f));
      assertEquals("GRAFT-R009", e.getCode());
      assertEquals(3, e.getStep());
      assertFalse(e.isLossFinite());
      assertTrue(e.getMessage().startsWith("[GRAFT-R009] training step 3: the loss is NaN; the step was not committed"),
          e.getMessage());
      assertSameState(before, state(model));
      assertEquals(2, model.getStep());
      model.setParameter(head, good);
      assertTrue(Float.isFinite(model.trainStep(inputs(MASK), LABELS, 1e-3f)));
      assertEquals(3, model.getStep());
    }
  }

  /**
   * A finite loss whose update is not finite (a first moment whose bias correction overflows,
   * from a checkpoint): the graph's guard refuses the step, parameters and moments unchanged.
   */
  @Test
  void finding3_aNonFiniteUpdateIsNotCommitted() throws Exception {
    Path ckpt = dir.resolve("big-moment.safetensors");
    try (AdapterModel model = open()) {
      model.trainStep(inputs(MASK), LABELS, 1e-3f);
      model.saveCheckpoint(ckpt);
      String b = nameOf(model, ParameterRole.LORA_B);
      Safetensors.Contents c = Safetensors.read(ckpt);
      Map<String, TensorData> tensors = new TreeMap<>(c.tensors());
      float[] big = new float[model.getParameter(b).length];
      Arrays.fill(big, 3e38f);
      tensors.put(b + ".adam_m", TensorData.ofFloats(model.getParameterShape(b), big));
      Files.delete(ckpt);
      Safetensors.write(ckpt, tensors, c.metadata());
      model.loadCheckpoint(ckpt);
      Map<String, float[]> before = state(model);
      NonFiniteStepException e =
          assertThrows(NonFiniteStepException.class, () -> model.trainStep(inputs(MASK), LABELS, 1e-3f));
      assertTrue(e.isLossFinite());
      assertEquals(2, e.getStep());
      assertTrue(e.getMessage().contains("the updated parameters or AdamW moments are not finite"), e.getMessage());
      assertSameState(before, state(model));
      assertEquals(1, model.getStep());
    }
  }

  private static List<Example> bertData() {
    List<Example> out = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      long[] ids = {1 + i, 2 + i % 3, 3, 4 + i % 5};
      out.add(new Example(Map.of("input_ids", ids, "attention_mask", new long[] {1, 1, 1, 1},
          "token_type_ids", new long[4]), i % 2));
    }
    return out;
  }

  /**
   * The finding: a bad last step of epoch 2 (a schedule gone wrong) used to poison the state and
   * the epoch's checkpoint. Now the step is refused, the run stops, epoch 1's checkpoint stays
   * byte for byte, and resuming from it finishes the run.
   */
  @Test
  void finding3_poisonedLastStepDoesNotOverwriteTheGoodCheckpoint() throws Exception {
    Path ckpt = dir.resolve("run.ckpt.safetensors");
    LearningRate good = LearningRate.constant(1e-3f);
    LearningRate poisoned = (step, total) -> step == total - 1 ? Float.MAX_VALUE : 1e-3f;
    byte[] epoch1;
    try (AdapterModel model = open()) {
      Trainer.builder().batchSize(4).epochs(1).learningRate(good).progress(null).checkpoint(ckpt).build()
          .fit(model, bertData(), List.of());
      epoch1 = Files.readAllBytes(ckpt);
    }
    Path run = dir.resolve("run2.ckpt.safetensors");
    Files.write(run, epoch1);
    // epoch 1's checkpoint as a 2-epoch run's (same settings but epochs)
    Safetensors.Contents c = Safetensors.read(run);
    Map<String, String> meta = new TreeMap<>(c.metadata());
    meta.put("epochs", "2");
    Files.delete(run);
    Safetensors.write(run, c.tensors(), meta);
    byte[] goodBytes = Files.readAllBytes(run);
    try (AdapterModel model = open()) {
      Trainer t = Trainer.builder().batchSize(4).epochs(2).learningRate(poisoned).progress(null).checkpoint(run).build();
      GraftException e = assertThrows(GraftException.class, () -> t.fit(model, bertData(), List.of()));
      assertEquals(RuntimeErrorCode.ARGUMENT, e.getErrorCode(), e.getMessage());
      assertFiniteState(model);
      assertEquals(3, model.getStep());
    }
    assertArrayEquals(goodBytes, Files.readAllBytes(run), "epoch 1's checkpoint is intact");
    try (AdapterModel model = open()) {
      Trainer.builder().batchSize(4).epochs(2).learningRate(good).progress(null).checkpoint(run).build()
          .fit(model, bertData(), List.of());
      assertEquals(4, model.getStep());
      assertFiniteState(model);
    }

    // a state made NaN between steps (the step is then skipped): the epoch's checkpoint is refused
    Path third = dir.resolve("run3.ckpt.safetensors");
    Files.write(third, goodBytes);
    try (AdapterModel model = open()) {
      String head = nameOf(model, ParameterRole.HEAD_WEIGHT);
      TrainingListener poison = new TrainingListener() {
        @Override
        public void onStep(Step step) {
          float[] w = model.getParameter(head);
          w[0] = Float.NaN;
          model.setParameter(head, w);
        }
      };
      Trainer t = Trainer.builder().batchSize(4).epochs(2).learningRate(good).progress(null).checkpoint(third)
          .onNonFinite(NonFinitePolicy.SKIP_BATCH).listener(poison).build();
      GraftException e = assertThrows(GraftException.class, () -> t.fit(model, bertData(), List.of()));
      assertEquals(RuntimeErrorCode.NON_FINITE, e.getErrorCode());
      assertTrue(e.getMessage().contains("not saving a checkpoint to " + third + " at step 3"), e.getMessage());
    }
    assertArrayEquals(goodBytes, Files.readAllBytes(third), "no non-finite checkpoint is written");
  }

  // ---------------------------------------------------------------- the Trainer's policies (tiny graph)

  private AdapterModel tiny() throws Exception {
    return AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)));
  }

  private static List<Example> tinyData() {
    List<Example> train = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      train.add(TrainerTest.example(1 + i % 4, i % 2));
    }
    return train;
  }

  /** Records every event; before step {@code poisonAfter + 1} sets p so that its loss overflows, and restores it when refused. */
  private static final class Recorder implements TrainingListener {
    final AdapterModel model;
    final long poisonAfter;
    final List<Step> steps = new ArrayList<>();
    final List<NonFiniteStep> refused = new ArrayList<>();
    final List<Divergence> divergences = new ArrayList<>();
    float[] saved;

    Recorder(AdapterModel model, long poisonAfter) {
      this.model = model;
      this.poisonAfter = poisonAfter;
    }

    @Override
    public void onStep(Step step) {
      steps.add(step);
      if (step.step() == poisonAfter) {
        saved = model.getParameter("p");
        model.setParameter("p", new float[] {1e20f, 0f});
      }
    }

    @Override
    public void onNonFiniteStep(NonFiniteStep step) {
      refused.add(step);
      model.setParameter("p", saved);
    }

    @Override
    public void onDivergence(Divergence divergence) {
      divergences.add(divergence);
    }
  }

  @Test
  void stopIsTheDefaultAndKeepsTheLastGoodState() throws Exception {
    try (AdapterModel model = tiny()) {
      model.setParameter("p", new float[] {1f, -2f});
      Recorder r = new Recorder(model, 2);
      Trainer t = Trainer.builder().batchSize(4).epochs(2).learningRate(0.1f).progress(null).listener(r).build();
      NonFiniteStepException e = assertThrows(NonFiniteStepException.class, () -> t.fit(model, tinyData(), List.of()));
      assertEquals(3, e.getStep());
      assertEquals(1, r.refused.size());
      assertEquals(NonFinitePolicy.STOP, r.refused.get(0).action());
      assertEquals(List.of(3L, 0L), List.of(r.refused.get(0).step(), r.refused.get(0).skippedSteps()));
      assertEquals(2, model.getStep());
    }
  }

  @Test
  void skipBatchLeavesTheBatchOutAndResumesWithTheSkippedCount() throws Exception {
    Path ckpt = dir.resolve("skip.ckpt.safetensors");
    float[] straight;
    try (AdapterModel model = tiny()) {
      model.setParameter("p", new float[] {1f, -2f});
      Recorder r = new Recorder(model, 2);
      Trainer.builder().batchSize(4).epochs(3).learningRate(0.1f).progress(null).listener(r)
          .onNonFinite(NonFinitePolicy.SKIP_BATCH).build().fit(model, tinyData(), List.of());
      assertEquals(1, r.refused.size());
      TrainingListener.NonFiniteStep s = r.refused.get(0);
      assertEquals(List.of(3L, 1, 3), List.of(s.step(), s.epoch(), s.stepInEpoch()));
      assertFalse(s.lossFinite());
      assertEquals(NonFinitePolicy.SKIP_BATCH, s.action());
      assertEquals(1, s.skippedSteps());
      assertEquals(1f, s.learningRateScale());
      assertEquals(8, r.steps.size());
      assertEquals(8, model.getStep());
      assertTrue(r.steps.stream().allMatch(x -> x.learningRate() == 0.1f));
      // 8 committed steps of p <- 0.7 p
      assertArrayEquals(new float[] {(float) Math.pow(0.7, 8), (float) (-2 * Math.pow(0.7, 8))},
          model.getParameter("p"), 1e-6f);
      straight = model.getParameter("p");
    }
    // the same run with a checkpoint, killed in epoch 2, then resumed: it ends where the straight run ended
    try (AdapterModel model = tiny()) {
      model.setParameter("p", new float[] {1f, -2f});
      Recorder r = new Recorder(model, 2);
      TrainingListener kill = new TrainingListener() {
        @Override
        public void onStep(Step step) {
          if (step.step() == 5) {
            throw new IllegalStateException("killed");
          }
        }
      };
      Trainer t = Trainer.builder().batchSize(4).epochs(3).learningRate(0.1f).progress(null).listener(r)
          .listener(kill).checkpoint(ckpt).onNonFinite(NonFinitePolicy.SKIP_BATCH).build();
      assertThrows(IllegalStateException.class, () -> t.fit(model, tinyData(), List.of()));
      assertEquals("1", Safetensors.read(ckpt).metadata().get("skipped_steps"));
    }
    try (AdapterModel model = tiny()) {
      List<TrainingListener.Run> starts = new ArrayList<>();
      TrainingListener start = new TrainingListener() {
        @Override
        public void onStart(Run run) {
          starts.add(run);
        }
      };
      Trainer.builder().batchSize(4).epochs(3).learningRate(0.1f).progress(null).listener(start).checkpoint(ckpt)
          .onNonFinite(NonFinitePolicy.SKIP_BATCH).build().fit(model, tinyData(), List.of());
      assertEquals(List.of(2, 1L), List.of(starts.get(0).firstEpoch(), starts.get(0).skippedSteps()));
      assertEquals(8, model.getStep());
      assertArrayEquals(straight, model.getParameter("p"), 0f);
    }
  }

  @Test
  void lowerLearningRateHalvesTheRateForTheRestOfTheRun() throws Exception {
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    try (AdapterModel model = tiny()) {
      model.setParameter("p", new float[] {1f, -2f});
      Recorder r = new Recorder(model, 4);
      Trainer.builder().batchSize(4).epochs(2).learningRate(0.1f).listener(r)
          .progress(new PrintStream(log, true, StandardCharsets.UTF_8)).interactive(false)
          .onNonFinite(NonFinitePolicy.LOWER_LEARNING_RATE).build().fit(model, tinyData(), List.of());
      assertEquals(1, r.refused.size());
      assertEquals(0.1f, r.refused.get(0).learningRate());
      assertEquals(0.5f, r.refused.get(0).learningRateScale());
      List<Float> rates = r.steps.stream().map(TrainingListener.Step::learningRate).toList();
      assertEquals(List.of(0.1f, 0.1f, 0.1f, 0.1f, 0.05f), rates);
      assertEquals(5, model.getStep());
      String text = log.toString(StandardCharsets.UTF_8);
      assertTrue(text.contains("step 5 not finite (loss Infinity): batch skipped, learning rate × 0.5 from now on"), text);
    }
  }

  /** A loss far above its running mean (here 30000 after 7.35, 3.6, 1.76) is a warning to the listeners, not an error. */
  @Test
  void divergenceIsAWarningThatReachesTheListeners() throws Exception {
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    try (AdapterModel model = tiny()) {
      model.setParameter("p", new float[] {1f, -2f});
      List<TrainingListener.Divergence> seen = new ArrayList<>();
      TrainingListener spike = new TrainingListener() {
        @Override
        public void onStep(Step step) {
          if (step.step() == 4) {
            model.setParameter("p", new float[] {100f, 0f});
          }
        }

        @Override
        public void onDivergence(Divergence divergence) {
          seen.add(divergence);
        }
      };
      Trainer.builder().batchSize(4).epochs(2).learningRate(0.1f).divergence(3, 10).listener(spike)
          .progress(new PrintStream(log, true, StandardCharsets.UTF_8)).interactive(false)
          .build().fit(model, tinyData(), List.of());
      assertEquals(1, seen.size(), seen.toString());
      TrainingListener.Divergence d = seen.get(0);
      assertEquals(5, d.step());
      assertEquals(30000f, d.loss(), 1f);
      assertEquals(15 * (0.49 + Math.pow(0.49, 2) + Math.pow(0.49, 3)) / 3, d.runningMean(), 1e-4);
      assertEquals(3, d.window());
      assertEquals(6, model.getStep());
      assertTrue(log.toString(StandardCharsets.UTF_8).contains("warning: step 5 loss 3.000e+04 is above 10× the mean"),
          log.toString(StandardCharsets.UTF_8));
    }
    assertThrows(GraftException.class, () -> Trainer.builder().divergence(0, 10));
    assertThrows(GraftException.class, () -> Trainer.builder().divergence(5, 1));
  }
}
