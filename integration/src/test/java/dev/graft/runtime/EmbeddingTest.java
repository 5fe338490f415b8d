package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.dsl.Graft;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.testing.Adapters;
import dev.graft.testing.MiniLmHost;
import dev.graft.testing.TinyDecoderHost;
import dev.graft.testing.TinyGpt2Host;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link AdapterModel#embed}: the pooled representation a LoRA graft's classification head reads
 * on MiniLM. With LoRA's B at zero it is the bare host's masked mean of {@code last_hidden_state},
 * computed here from a plain ONNX Runtime session on the host file; after training it moves, and
 * the logits are still that embedding times the head.
 */
class EmbeddingTest {
  private static final long[][] IDS = {{101, 2023, 2003, 2204, 102, 0}, {101, 6659, 3185, 102, 0, 0},
      {101, 1045, 2293, 2009, 999, 102}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1, 0}, {1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}};
  private static final long[] LABELS = {1, 0, 1};
  private static CompiledGraft graft;

  @BeforeAll
  static void compile() {
    graft = Graft.host(MiniLmHost.get()).lora("", l -> l.rank(4)).classification(2).compile();
  }

  private static Map<String, long[][]> inputs() {
    return Map.of("input_ids", IDS, "attention_mask", MASK, "token_type_ids", new long[IDS.length][IDS[0].length]);
  }

  @Test
  void theManifestNamesTheEmbeddingOutputOfTheInferenceGraphOnly() {
    Manifest m = graft.manifest();
    assertEquals("embedding", m.getTask().getEmbeddingOutput());
    assertEquals(384, m.getTask().getEmbeddingSize());
    assertEquals(List.of(m.getLogits(), "embedding"), outputs(graft.inference()));
    assertFalse(outputs(graft.train()).contains("embedding"));
    assertFalse(outputs(graft.update()).contains("embedding"));
    assertFalse(outputs(graft.merge()).contains("embedding"));
  }

  @Test
  void atZeroLoraTheEmbeddingIsTheBareHostsMeanPooledOutputAndTrainingMovesIt(@TempDir Path dir) throws Exception {
    double[][] host = hostMeanPooled(graft.manifest().getTask().getHostOutput());
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3))) {
      float[][] before = model.embed(inputs());
      assertEquals(IDS.length, before.length);
      double worst = 0;
      for (int i = 0; i < IDS.length; i++) {
        assertEquals(384, before[i].length);
        for (int j = 0; j < 384; j++) {
          worst = Math.max(worst, Math.abs(before[i][j] - host[i][j]));
        }
      }
      System.err.printf("embedding at zero LoRA B vs the bare host's mean-pooled output: max |diff| %.3g%n", worst);
      assertTrue(worst < 1e-5, "embedding vs the bare host's mean-pooled output: max |Δ| " + worst);
      assertHeadReads(model, before);

      for (int step = 0; step < 5; step++) {
        model.trainStep(inputs(), LABELS, 1e-2f);
      }
      float[][] after = model.embed(inputs());
      double moved = 0;
      for (int i = 0; i < IDS.length; i++) {
        for (int j = 0; j < 384; j++) {
          moved = Math.max(moved, Math.abs(after[i][j] - before[i][j]));
        }
      }
      System.err.printf("embedding after 5 LoRA steps: max |change| %.3g%n", moved);
      assertTrue(moved > 1e-3, "training LoRA moves the embedding: max |Δ| " + moved);
      assertHeadReads(model, after);

      // The unmerged export keeps its documented outputs: the task's only.
      model.exportUnmerged(dir.resolve("unmerged"), ExportOptions.defaults());
      ModelProto exported;
      try (InputStream in = Files.newInputStream(dir.resolve("unmerged").resolve("model.onnx"))) {
        exported = ModelProto.parseFrom(in);
      }
      assertEquals(List.of(graft.manifest().getLogits()),
          exported.getGraph().getOutputList().stream().map(o -> o.getName()).toList());
    }
  }

  @Test
  void aTaskWithoutAPooledHeadHasNoEmbedding(@TempDir Path dir) throws Exception {
    HostModel host = TinyDecoderHost.host(TinyGpt2Host.graph(5));
    Path file = dir.resolve("tiny-decoder.onnx");
    Files.write(file, host.model().toByteArray());
    CompiledGraft lm = GraftCompiler.compile(new GraftSpec("Lm", "tiny", List.of(Adapters.lora(".*/attn/c_attn/MatMul", 2, 4)),
        new CausalLmSpec(TinyDecoderHost.LM_OUTPUT, -100, 0.0, null), AdamWSpec.DEFAULT, null),
        host).orThrow();
    assertEquals("", lm.manifest().getTask().getEmbeddingOutput());
    try (AdapterModel model = AdapterModel.open(Graft.graphs(lm), ModelOptions.defaults().withHost(file))) {
      GraftException e = assertThrows(GraftException.class,
          () -> model.embed(Map.of("input_ids", new long[][] {{1, 2, 3}}, "attention_mask", new long[][] {{1, 1, 1}})));
      assertEquals("GRAFT-R007", e.getCode());
      assertTrue(e.getMessage().contains("'" + lm.manifest().getName() + "'") && e.getMessage().contains("pooled head"),
          e.getMessage());
    }
  }

  /** logits = embedding · W + b with the model's own head, in double. */
  private static void assertHeadReads(AdapterModel model, float[][] embedding) {
    float[][] logits = model.predict(inputs());
    float[] w = model.getParameter("classifier.weight");
    float[] b = model.getParameter("classifier.bias");
    for (int i = 0; i < logits.length; i++) {
      for (int c = 0; c < 2; c++) {
        double z = b[c];
        for (int j = 0; j < 384; j++) {
          z += (double) embedding[i][j] * w[j * 2 + c];
        }
        assertEquals(z, logits[i][c], 1e-4, "logit " + c + " of row " + i);
      }
    }
  }

  /** The plain host file's output, mean-pooled over the tokens whose mask is 1, in double. */
  private static double[][] hostMeanPooled(String output) throws Exception {
    byte[] bytes;
    try (InputStream in = EmbeddingTest.class.getClassLoader().getResourceAsStream(MiniLmHost.RESOURCE)) {
      bytes = in.readAllBytes();
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession s = env.createSession(bytes, new OrtSession.SessionOptions())) {
      Map<String, OnnxTensor> feed = new HashMap<>();
      try {
        for (Map.Entry<String, long[][]> e : inputs().entrySet()) {
          if (s.getInputNames().contains(e.getKey())) {
            feed.put(e.getKey(), OnnxTensor.createTensor(env, e.getValue()));
          }
        }
        try (OrtSession.Result r = s.run(feed, Set.of(output))) {
          float[][][] h = (float[][][]) r.get(output).orElseThrow().getValue();
          double[][] pooled = new double[h.length][h[0][0].length];
          for (int i = 0; i < h.length; i++) {
            int count = 0;
            for (int t = 0; t < h[i].length; t++) {
              if (MASK[i][t] == 1) {
                count++;
                for (int j = 0; j < pooled[i].length; j++) {
                  pooled[i][j] += h[i][t][j];
                }
              }
            }
            for (int j = 0; j < pooled[i].length; j++) {
              pooled[i][j] /= count;
            }
          }
          return pooled;
        }
      } finally {
        feed.values().forEach(OnnxTensor::close);
      }
    }
  }

  private static List<String> outputs(ModelProto model) {
    return model.getGraph().getOutputList().stream().map(o -> o.getName()).toList();
  }
}
