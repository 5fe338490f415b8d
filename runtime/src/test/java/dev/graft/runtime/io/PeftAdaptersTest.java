package dev.graft.runtime.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.FormatException;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.spec.manifest.ClassificationHead;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PeftAdaptersTest {
  @TempDir Path dir;

  /**
   * Two LoRA sites (in 3, out 4, r 2) and a head (hidden 4, 2 labels), with the save keys,
   * shapes and config the compiler writes for them.
   */
  static Manifest manifest(int rank) {
    Manifest.Builder m =
        Manifest.newBuilder()
            .setName("Sentiment")
            .setHost("all-minilm-l6-v2.onnx")
            .setAdapterConfig("{\"peft_type\": \"LORA\", \"r\": " + rank + ", \"lora_alpha\": 16,"
                + " \"target_modules\": [\"query\", \"value\"], \"base_model_name_or_path\": \"all-minilm-l6-v2.onnx\"}")
            .setHead(ClassificationHead.newBuilder().setNumLabels(2).setHiddenSize(4));
    for (String site : List.of("encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value")) {
      m.addParameters(param(site + "/lora_A", site, "lora_A.weight", 3, rank));
      m.addParameters(param(site + "/lora_B", site, "lora_B.weight", rank, 4));
    }
    m.addParameters(param("classifier/weight", "classifier", "weight", 4, 2));
    m.addParameters(Parameter.newBuilder().setName("classifier/bias").setSite("classifier")
        .setRole(ParameterRole.HEAD_BIAS).addShape(2).setSaveKey("base_model.model.classifier.bias").addSaveShape(2));
    // Recomputed from the host, so not saved.
    m.addParameters(Parameter.newBuilder().setName("frozen").setSite("x").setFrozen(true).addShape(3));
    return m.build();
  }

  /** A 2-D parameter saved transposed as {@code base_model.model.<site>.<suffix>}. */
  static Parameter param(String name, String site, String suffix, long rows, long cols) {
    return Parameter.newBuilder().setName(name).setSite(site).setRole(ParameterRole.ADAPTER).addShape(rows).addShape(cols)
        .setSaveKey("base_model.model." + site + "." + suffix).addSaveShape(cols).addSaveShape(rows)
        .setSaveTransposed(true).build();
  }

  static final class Store implements ParameterStore {
    final Manifest manifest;
    final Map<String, float[]> values = new LinkedHashMap<>();

    Store(Manifest manifest, float offset) {
      this.manifest = manifest;
      for (Parameter p : manifest.getParametersList()) {
        int n = (int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
          v[i] = offset + i;
        }
        values.put(p.getName(), v);
      }
    }

    @Override
    public Manifest getManifest() {
      return manifest;
    }

    @Override
    public float[] getParameter(String name) {
      return values.get(name).clone();
    }

    @Override
    public void setParameter(String name, float[] v) {
      assertEquals(values.get(name).length, v.length);
      values.put(name, v.clone());
    }
  }

  @Test
  void savesPeftKeysShapesTransposesAndConfig() throws IOException {
    Store store = new Store(manifest(2), 0);
    PeftAdapters.save(store, dir);
    Map<String, TensorData> t = Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
    String q = "base_model.model.encoder.layer.0.attention.self.query.";
    assertEquals(
        List.of(
            "base_model.model.classifier.bias",
            "base_model.model.classifier.weight",
            q + "lora_A.weight",
            q + "lora_B.weight",
            "base_model.model.encoder.layer.0.attention.self.value.lora_A.weight",
            "base_model.model.encoder.layer.0.attention.self.value.lora_B.weight"),
        List.copyOf(t.keySet()));
    assertArrayEquals(new long[] {2, 3}, t.get(q + "lora_A.weight").shape());
    assertArrayEquals(new long[] {4, 2}, t.get(q + "lora_B.weight").shape());
    assertArrayEquals(new long[] {2, 4}, t.get("base_model.model.classifier.weight").shape());
    assertArrayEquals(new long[] {2}, t.get("base_model.model.classifier.bias").shape());
    // ours A [in=3, r=2] = [[0,1],[2,3],[4,5]]; PEFT lora_A [r, in] = [[0,2,4],[1,3,5]]
    assertArrayEquals(new float[] {0, 2, 4, 1, 3, 5}, t.get(q + "lora_A.weight").toFloats(), 0f);
    // ours head [hidden=4, labels=2] = [[0,1],[2,3],[4,5],[6,7]]; PEFT [2, 4]
    assertArrayEquals(new float[] {0, 2, 4, 6, 1, 3, 5, 7}, t.get("base_model.model.classifier.weight").toFloats(), 0f);
    assertArrayEquals(new float[] {0, 1}, t.get("base_model.model.classifier.bias").toFloats(), 0f);

    String config = Files.readString(dir.resolve(PeftAdapters.CONFIG_FILE), StandardCharsets.UTF_8);
    assertEquals(store.manifest.getAdapterConfig(), config, "the compiler's config, verbatim");
  }

  @Test
  void loadRestoresEveryParameter() {
    Store saved = new Store(manifest(2), 0.5f);
    PeftAdapters.save(saved, dir);
    Store loaded = new Store(manifest(2), 100);
    PeftAdapters.load(loaded, dir);
    for (Parameter p : saved.manifest.getParametersList()) {
      if (p.getSaveKey().isEmpty()) {
        assertEquals(100f, loaded.values.get(p.getName())[0], "not saved, so not loaded: " + p.getName());
        continue;
      }
      assertArrayEquals(saved.values.get(p.getName()), loaded.values.get(p.getName()), 0f, p.getName());
    }
  }

  @Test
  void loadChecksTheConfigAgainstTheManifest() throws IOException {
    PeftAdapters.save(new Store(manifest(2), 0), dir);
    FormatException rank = assertThrows(FormatException.class, () -> PeftAdapters.load(new Store(manifest(3), 0), dir));
    assertTrue(rank.getMessage().contains("r: expected 3, given 2"), rank.getMessage());

    Path config = dir.resolve(PeftAdapters.CONFIG_FILE);
    Files.writeString(config, Files.readString(config).replace("\"value\"", "\"key\"")
        .replace("all-minilm-l6-v2.onnx", "elsewhere/model.onnx"));
    FormatException targets = assertThrows(FormatException.class, () -> PeftAdapters.load(new Store(manifest(2), 0), dir));
    assertTrue(targets.getMessage().contains("target_modules: expected [\"query\",\"value\"], given [\"query\",\"key\"]"),
        targets.getMessage());
    assertTrue(!targets.getMessage().contains("base_model_name_or_path"), "where it was saved from does not matter");
  }

  @Test
  void loadChecksTensorNamesAndShapes() {
    PeftAdapters.save(new Store(manifest(2), 0), dir);
    Map<String, TensorData> t = new LinkedHashMap<>(Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors());
    String a = "base_model.model.encoder.layer.0.attention.self.query.lora_A.weight";
    t.put(a, TensorData.ofFloats(new long[] {3, 2}, new float[6]));
    Safetensors.write(dir.resolve(PeftAdapters.WEIGHTS_FILE), t, Map.of());
    TensorMismatchException shape =
        assertThrows(TensorMismatchException.class, () -> PeftAdapters.load(new Store(manifest(2), 0), dir));
    assertEquals(a, shape.getTensorName());
    assertEquals("F32[2, 3]", shape.getExpected());
    assertEquals("F32[3, 2]", shape.getGiven());

    t.remove(a);
    Safetensors.write(dir.resolve(PeftAdapters.WEIGHTS_FILE), t, Map.of());
    FormatException missing = assertThrows(FormatException.class, () -> PeftAdapters.load(new Store(manifest(2), 0), dir));
    assertTrue(missing.getMessage().contains("has no tensor '" + a + "'"), missing.getMessage());
  }

  @Test
  void transposeIsItsOwnInverse() {
    float[] v = {1, 2, 3, 4, 5, 6};
    assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, PeftAdapters.transpose(v, 2, 3), 0f);
    assertArrayEquals(v, PeftAdapters.transpose(PeftAdapters.transpose(v, 2, 3), 3, 2), 0f);
  }
}
