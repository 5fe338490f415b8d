package dev.graft.runtime.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
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
import java.nio.file.attribute.PosixFilePermission;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
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
  void decoderLayoutsPrefixTheModulesNotTheHeadAndAreFoundOnLoad() throws IOException {
    Manifest.Builder b = manifest(2).toBuilder();
    for (int i = 0; i < b.getParametersCount(); i++) {
      if (b.getParameters(i).getName().equals("classifier/weight")) {
        b.setParameters(i, b.getParameters(i).toBuilder().setRole(ParameterRole.HEAD_WEIGHT));
      }
    }
    Manifest m = b.build();
    for (PeftLayout layout : List.of(PeftLayout.MODEL, PeftLayout.TRANSFORMER)) {
      Path folder = dir.resolve(layout.name());
      Store saved = new Store(m, 0.25f);
      PeftAdapters.save(saved, folder, layout);
      Set<String> keys = Safetensors.read(folder.resolve(PeftAdapters.WEIGHTS_FILE)).tensors().keySet();
      assertEquals(Set.of("base_model.model.classifier.bias", "base_model.model.classifier.weight",
          "base_model.model." + layout.prefix() + "encoder.layer.0.attention.self.query.lora_A.weight",
          "base_model.model." + layout.prefix() + "encoder.layer.0.attention.self.query.lora_B.weight",
          "base_model.model." + layout.prefix() + "encoder.layer.0.attention.self.value.lora_A.weight",
          "base_model.model." + layout.prefix() + "encoder.layer.0.attention.self.value.lora_B.weight"), keys);
      Store loaded = new Store(m, 100);
      PeftAdapters.load(loaded, folder);
      for (Parameter p : m.getParametersList()) {
        if (!p.getSaveKey().isEmpty()) {
          assertArrayEquals(saved.values.get(p.getName()), loaded.values.get(p.getName()), 0f, layout + " " + p.getName());
        }
      }
      GraftException other = assertThrows(GraftException.class, () -> PeftAdapters.load(new Store(m, 0), folder, PeftLayout.BERT));
      assertEquals(RuntimeErrorCode.PEFT_LAYOUT, other.getErrorCode());
    }
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
  void finding4_failedSecondFileKeepsThePreviousAdapter() throws IOException {
    Store previous = new Store(manifest(2), 0.5f);
    PeftAdapters.save(previous, dir);
    Store other = new Store(manifest(2), 9f);
    Map<String, AtomicFiles.Writer> files = new LinkedHashMap<>();
    byte[] weights = Safetensors.toBytes(PeftAdapters.stateDict(other), Map.of());
    files.put(PeftAdapters.WEIGHTS_FILE, out -> out.write(weights));
    files.put(PeftAdapters.CONFIG_FILE, out -> {
      out.write('{');
      throw new IOException("no space left on device (simulated)");
    });
    GraftException e = assertThrows(GraftException.class, () -> AtomicFiles.writeFolder(dir, files));
    assertEquals(RuntimeErrorCode.IO, e.getErrorCode());
    assertTrue(e.getMessage().contains("no space left on device (simulated)"), e.getMessage());

    Store loaded = new Store(manifest(2), 100);
    PeftAdapters.load(loaded, dir);
    assertArrayEquals(previous.values.get("classifier/weight"), loaded.values.get("classifier/weight"), 0f,
        "the previous adapter, whole");
    try (Stream<Path> s = Files.list(dir.getParent())) {
      assertEquals(List.of(dir.getFileName().toString()),
          s.map(p -> p.getFileName().toString()).filter(n -> n.contains(dir.getFileName().toString())).toList(),
          "no temporary folder left");
    }
  }

  @Test
  void finding4_savedFilesHonourTheUmask() throws IOException {
    Path reference = Files.createFile(dir.getParent().resolve(dir.getFileName() + "-reference"));
    Path referenceDir = Files.createDirectory(dir.getParent().resolve(dir.getFileName() + "-reference-dir"));
    try {
      Path adapter = dir.resolve("adapter");
      PeftAdapters.save(new Store(manifest(2), 0), adapter);
      PeftAdapters.save(new Store(manifest(2), 1), adapter);
      Set<PosixFilePermission> file = Files.getPosixFilePermissions(reference);
      assertEquals(file, Files.getPosixFilePermissions(adapter.resolve(PeftAdapters.WEIGHTS_FILE)));
      assertEquals(file, Files.getPosixFilePermissions(adapter.resolve(PeftAdapters.CONFIG_FILE)));
      assertEquals(Files.getPosixFilePermissions(referenceDir), Files.getPosixFilePermissions(adapter));
      Path checkpointLike = dir.resolve("single.safetensors");
      Safetensors.write(checkpointLike, Map.of(), Map.of());
      assertEquals(file, Files.getPosixFilePermissions(checkpointLike));
    } finally {
      Files.delete(reference);
      Files.delete(referenceDir);
    }
  }

  @Test
  void finding4_aSaveKilledBetweenItsTwoRenamesIsRecoveredFromTheBackup() throws IOException {
    Path adapter = dir.resolve("adapter");
    Store previous = new Store(manifest(2), 0.5f);
    PeftAdapters.save(previous, adapter);
    // The state a kill between "adapter -> backup" and "temporary -> adapter" leaves.
    Path backup = dir.resolve(".adapter.graft-backup");
    Files.move(adapter, backup);
    Path tmp = Files.createDirectory(dir.resolve(".adapter.graft-tmp-x1"));
    Files.writeString(tmp.resolve(PeftAdapters.CONFIG_FILE), "{");

    Store loaded = new Store(manifest(2), 100);
    PeftAdapters.load(loaded, adapter);
    assertArrayEquals(previous.values.get("classifier/weight"), loaded.values.get("classifier/weight"), 0f);
    assertTrue(Files.isDirectory(backup), "a load changes nothing on disk");

    Store next = new Store(manifest(3), 2f);
    PeftAdapters.save(next, adapter);
    try (Stream<Path> s = Files.list(dir)) {
      assertEquals(List.of("adapter"), s.map(p -> p.getFileName().toString()).toList());
    }
    Store again = new Store(manifest(3), 100);
    PeftAdapters.load(again, adapter);
    assertArrayEquals(next.values.get("classifier/weight"), again.values.get("classifier/weight"), 0f);
  }

  @Test
  void aSaveKeepsTheFolderEntriesItDoesNotWrite() throws IOException {
    Path adapter = dir.resolve("adapter");
    PeftAdapters.save(new Store(manifest(2), 0), adapter);
    Files.writeString(adapter.resolve("README.md"), "my adapter");
    Files.createDirectories(adapter.resolve("extra/deeper"));
    Files.writeString(adapter.resolve("extra/deeper/notes.txt"), "notes");
    PeftAdapters.save(new Store(manifest(2), 1), adapter);
    assertEquals("my adapter", Files.readString(adapter.resolve("README.md")));
    assertEquals("notes", Files.readString(adapter.resolve("extra/deeper/notes.txt")));
  }

  @Test
  void finding6_nanTensorsAreRefused() {
    for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
      PeftAdapters.save(new Store(manifest(2), 0), dir);
      Map<String, TensorData> t = new LinkedHashMap<>(Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors());
      t.put("base_model.model.classifier.bias", TensorData.ofFloats(new long[] {2}, new float[] {1, bad}));
      Safetensors.write(dir.resolve(PeftAdapters.WEIGHTS_FILE), t, Map.of());
      Store store = new Store(manifest(2), 100);
      FormatException e = assertThrows(FormatException.class, () -> PeftAdapters.load(store, dir));
      assertEquals(RuntimeErrorCode.FORMAT, e.getErrorCode());
      assertTrue(e.getMessage().contains("'base_model.model.classifier.bias' holds " + bad + " at element 1"),
          e.getMessage());
      assertEquals(100f, store.values.get("classifier/weight")[0], "nothing was set");
    }
    // A float64 that overflows float32 is refused as well.
    Map<String, TensorData> t = new LinkedHashMap<>(Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors());
    t.put("base_model.model.classifier.bias", TensorData.ofDoubles(new long[] {2}, new double[] {1e300, 0}));
    Safetensors.write(dir.resolve(PeftAdapters.WEIGHTS_FILE), t, Map.of());
    assertThrows(FormatException.class, () -> PeftAdapters.load(new Store(manifest(2), 100), dir));
  }

  @Test
  void finding6_jsonWithCommentsOrDuplicateKeysIsRefused() throws IOException {
    Store saved = new Store(manifest(2), 0);
    PeftAdapters.save(saved, dir);
    Path config = dir.resolve(PeftAdapters.CONFIG_FILE);
    String good = Files.readString(config);
    Map<String, String> bad = new LinkedHashMap<>();
    bad.put("a comment", "// saved by hand\n" + good);
    bad.put("a block comment", good.replace("\"r\": 2", "/* rank */ \"r\": 2"));
    bad.put("key 'r' appears twice", good.replace("\"r\": 2", "\"r\": 7, \"r\": 2"));
    bad.put("an unquoted name", good.replace("\"r\": 2", "r: 2"));
    bad.put("more after the value", good + " {}");
    for (Map.Entry<String, String> b : bad.entrySet()) {
      Files.writeString(config, b.getValue());
      Store store = new Store(manifest(2), 100);
      FormatException e = assertThrows(FormatException.class, () -> PeftAdapters.load(store, dir), b.getKey());
      assertEquals(RuntimeErrorCode.FORMAT, e.getErrorCode());
      assertEquals(config.toString(), e.getSource(), b.getKey());
      assertTrue(e.getMessage().contains("is not valid JSON"), e.getMessage());
      assertEquals(100f, store.values.get("classifier/weight")[0], "nothing was set");
    }
    Files.writeString(config, good);
    PeftAdapters.load(new Store(manifest(2), 100), dir);
  }

  @Test
  void transposeIsItsOwnInverse() {
    float[] v = {1, 2, 3, 4, 5, 6};
    assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, PeftAdapters.transpose(v, 2, 3), 0f);
    assertArrayEquals(v, PeftAdapters.transpose(PeftAdapters.transpose(v, 2, 3), 3, 2), 0f);
  }
}
