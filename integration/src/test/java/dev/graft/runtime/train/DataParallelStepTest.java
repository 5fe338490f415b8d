package dev.graft.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Batch;
import dev.graft.testing.TinyBertHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The data-parallel halves of the training step (GraphVariant GRADIENT and APPLY) through {@code
 * AdapterModel}: two replicas, each on part of a batch, averaging their gradients and applying the
 * average, end with the same parameters (bit for bit) as each other and as one training step on
 * the whole batch (within float rounding of the reordered sums); gradient then apply on one
 * replica is the training step itself.
 */
class DataParallelStepTest {
  private static final int ROWS = 8;
  private static final int SEQUENCE = 5;
  private static final float RATE = 0.01f;

  @TempDir static Path dir;
  private static CompiledGraft graft;

  @BeforeAll
  static void compile() throws Exception {
    Path host = dir.resolve("tiny.onnx");
    Files.write(host, OnnxExport.write(TinyBertHost.graph(7), "tiny").toByteArray());
    graft = Graft.host(host).name("Dp").lora("", l -> l.rank(4)).classification(2).compile(GraphVariant.GRADIENT);
  }

  private static Batch batch(int from, int to, long seed) {
    Random r = new Random(seed);
    long[][] ids = new long[ROWS][SEQUENCE];
    long[][] mask = new long[ROWS][SEQUENCE];
    long[][] types = new long[ROWS][SEQUENCE];
    long[] labels = new long[ROWS];
    for (int i = 0; i < ROWS; i++) {
      for (int t = 0; t < SEQUENCE; t++) {
        ids[i][t] = r.nextInt(50);
        mask[i][t] = t < 2 + i % 4 ? 1 : 0;
      }
      labels[i] = r.nextInt(2);
    }
    return new Batch(Map.of("input_ids", Arrays.copyOfRange(ids, from, to),
        "attention_mask", Arrays.copyOfRange(mask, from, to), "token_type_ids", Arrays.copyOfRange(types, from, to)),
        Arrays.copyOfRange(labels, from, to));
  }

  /** Opens a replica whose trained parameters are all random (LoRA's B starts at zero, which would hide A's gradient). */
  private static AdapterModel replica() {
    AdapterModel m = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults());
    Random r = new Random(11);
    float[] v = m.getParameterVector();
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (0.3 * r.nextGaussian());
    }
    m.setParameterVector(v);
    return m;
  }

  @Test
  void theVariantsAreCompiledOnRequestAndNamedInTheManifest() {
    var names = graft.manifest().getDataParallel();
    assertEquals("Dp.gradient.onnx", names.getGradientGraph());
    assertEquals("Dp.apply.onnx", names.getApplyGraph());
    assertEquals(".grad", names.getGradientSuffix());
    assertNotNull(graft.gradient());
    assertNotNull(graft.apply());
    List<String> outputs = graft.gradient().getGraph().getOutputList().stream().map(o -> o.getName()).toList();
    List<String> expected = new java.util.ArrayList<>(List.of("loss"));
    graft.manifest().getParametersList().forEach(p -> expected.add(p.getName() + ".grad"));
    assertEquals(expected, outputs);
    // The apply graph holds no host: only the update's scalars as initializers.
    assertTrue(graft.apply().getGraph().getInitializerList().stream().allMatch(t -> t.getDimsCount() == 0));
    assertTrue(graft.gradient().getGraph().getInputList().stream().noneMatch(i -> i.getName().endsWith(".adam_m")
        || i.getName().equals("learning_rate")));
    CompiledGraft plain = Graft.host(TinyBertHost.host(7)).name("Dp").lora("", l -> l.rank(4)).classification(2).compile();
    assertNull(plain.gradient());
    assertEquals(false, plain.manifest().hasDataParallel());
  }

  @Test
  void twoReplicasOnHalvesMatchOneStepOnTheWholeBatch() {
    try (AdapterModel single = replica(); AdapterModel a = replica(); AdapterModel b = replica()) {
      float worst = 0;
      for (int step = 0; step < 4; step++) {
        Batch whole = batch(0, ROWS, step);
        float loss = single.trainStep(whole, RATE);
        // Unequal parts: 5 and 3 rows, averaged by their examples.
        Gradients ga = a.computeGradients(batch(0, 5, step));
        Gradients gb = b.computeGradients(batch(5, ROWS, step));
        assertEquals(5, ga.examples());
        assertEquals(3, gb.examples());
        Gradients mean = Gradients.average(List.of(ga, gb));
        assertEquals(loss, mean.loss(), 1e-5f, "mean loss of the halves at step " + step);
        a.applyGradients(mean, RATE);
        b.applyGradients(mean, RATE);
        float[] pa = a.getParameterVector();
        assertArrayEquals(pa, b.getParameterVector(), 0f, "replicas identical after step " + (step + 1));
        float[] ps = single.getParameterVector();
        for (int i = 0; i < ps.length; i++) {
          worst = Math.max(worst, Math.abs(ps[i] - pa[i]));
        }
        assertEquals(step + 1, a.getStep());
      }
      // AdamW's first steps move each value by about the rate (0.01); the halves' sums differ
      // from the whole batch's by rounding only.
      assertTrue(worst < 2e-5f, "largest difference from the whole-batch steps: " + worst);
    }
  }

  @Test
  void gradientThenApplyIsTheTrainingStep() {
    try (AdapterModel train = replica(); AdapterModel halves = replica()) {
      for (int step = 0; step < 3; step++) {
        Batch whole = batch(0, ROWS, 100 + step);
        float loss = train.trainStep(whole, RATE);
        Gradients g = halves.computeGradients(whole);
        assertEquals(loss, g.loss(), 0f, "the gradient graph's loss is the training step's");
        halves.applyGradients(g, RATE);
        float[] expected = train.getParameterVector();
        float[] got = halves.getParameterVector();
        // The same ops on the same values: bit for bit.
        assertArrayEquals(expected, got, 0f, "step " + (step + 1));
      }
    }
  }

  @Test
  void aGraftWithoutTheVariantsIsACodedError() {
    CompiledGraft plain = Graft.host(dir.resolve("tiny.onnx")).name("Plain").lora("", l -> l.rank(4)).classification(2)
        .compile();
    try (AdapterModel m = AdapterModel.open(Graft.graphs(plain), ModelOptions.defaults())) {
      GraftException e = assertThrows(GraftException.class, () -> m.computeGradients(batch(0, 2, 0)));
      assertEquals("GRAFT-R160", e.getCode());
      assertTrue(e.getMessage().contains("GraphVariant.GRADIENT"), e.getMessage());
    }
  }

  @Test
  void vectorsOfTheWrongLengthAreRefused() {
    try (AdapterModel m = replica()) {
      int n = m.getParameterVector().length;
      GraftException e = assertThrows(GraftException.class, () -> m.setParameterVector(new float[n - 1]));
      assertEquals("GRAFT-R002", e.getCode());
      GraftException g = assertThrows(GraftException.class,
          () -> m.applyGradients(new Gradients(1f, 1, new float[n + 1]), RATE));
      assertEquals("GRAFT-R002", g.getCode());
      assertEquals(0, m.getStep());
    }
  }
}
