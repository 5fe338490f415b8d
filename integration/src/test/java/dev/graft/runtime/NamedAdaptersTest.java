package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.dsl.Graft;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.spec.manifest.Parameter;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Named adapters through the runtime on the real all-MiniLM-L6-v2: two named adapters stacked,
 * one trained and one frozen (its values unchanged by steps), activation by name changing
 * predictions (all off: the host with the head), and a named adapter saved alone and loaded
 * back bit-identically.
 */
class NamedAdaptersTest {
  private static final String HOST = "all-minilm-l6-v2.onnx";
  private static final String FFN = ".*/layer.[0-9]+/output/dense/MatMul";
  private static final long[][] IDS = {{101, 2023, 3185, 2001, 2307, 102}, {101, 6659, 2833, 999, 102, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0}};
  private static final long[] LABELS = {1, 0};

  private static HostModel host() {
    try (InputStream in = NamedAdaptersTest.class.getClassLoader().getResourceAsStream(HOST)) {
      return HostModel.read(in, HOST);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    m.put("token_type_ids", new long[2][6]);
    return m;
  }

  @Test
  void trainOneFreezeOtherActivateSaveAndLoadByName(@TempDir Path dir) {
    CompiledGraft graft = Graft.host(host()).name("Named")
        .lora(FFN, o -> o.name("task").rank(4))
        .bottleneck("", o -> o.name("lang").reduction(16).initWeights("bert"))
        .compose(Graft.stack("lang", "task"))
        .train("task")
        .classification(2)
        .compile();
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3))) {
      Map<String, float[]> before = new HashMap<>();
      for (Parameter p : model.getParameters()) {
        before.put(p.getName(), model.getParameter(p.getName()).clone());
      }
      float first = model.trainStep(inputs(), LABELS, 1e-2f);
      float last = first;
      for (int i = 0; i < 4; i++) {
        last = model.trainStep(inputs(), LABELS, 1e-2f);
      }
      assertTrue(last < first, "loss " + first + " -> " + last);
      int changed = 0;
      for (Parameter p : model.getParameters()) {
        boolean same = java.util.Arrays.equals(before.get(p.getName()), model.getParameter(p.getName()));
        if (p.getName().startsWith("lang.")) {
          assertTrue(same, "frozen " + p.getName() + " changed");
        } else if (p.getName().startsWith("task.") && !same) {
          changed++;
        }
      }
      assertTrue(changed > 0, "the trained adapter's values changed");

      assertEquals(Set.of("lang", "task"), model.activeAdapters());
      float[][] both = model.predict(inputs());
      model.activate("lang");
      float[][] langOnly = model.predict(inputs());
      model.activate();
      float[][] none = model.predict(inputs());
      assertTrue(Math.abs(both[0][0] - langOnly[0][0]) > 1e-6, "switching task off changes the logits");
      assertTrue(Math.abs(langOnly[0][0] - none[0][0]) > 1e-6, "switching lang off changes the logits");
      GraftException unknown = assertThrows(GraftException.class, () -> model.activate("nope"));
      assertTrue(unknown.getMessage().contains("[lang, task]"), unknown.getMessage());
      model.activateAll();
      assertArrayEquals(both[0], model.predict(inputs())[0], 0f);

      model.saveAdapter(dir.resolve("task"), "task");
      float[] saved = model.getParameter("task.encoder.layer.0.output.dense.lora_B");
      try (AdapterModel fresh = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3))) {
        fresh.loadAdapter(dir.resolve("task"), "task");
        assertArrayEquals(saved, fresh.getParameter("task.encoder.layer.0.output.dense.lora_B"), 0f);
        // lang and the head are the same seeded initial values in both; after loading task, fresh
        // differs from model only in the head, which model trained: copy it and compare bit for bit.
        fresh.setParameter("classifier.weight", model.getParameter("classifier.weight"));
        fresh.setParameter("classifier.bias", model.getParameter("classifier.bias"));
        assertArrayEquals(both[0], fresh.predict(inputs())[0], 0f);
        assertThrows(RuntimeException.class, () -> fresh.loadAdapter(dir.resolve("task"), "lang"));
      }
    }
  }
}
