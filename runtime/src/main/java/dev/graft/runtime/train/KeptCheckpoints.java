package dev.graft.runtime.train;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.io.AtomicFiles;
import dev.graft.runtime.io.StrictJson;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * The checkpoints a {@link CheckpointKeeper} kept in its folder, as its {@code index.json} lists
 * them, oldest first. Each is a training checkpoint ({@code AdapterModel.saveCheckpoint}: the
 * parameters, the AdamW moments and the step) in {@code step-<step>.safetensors}, recorded with its
 * step, the mean training loss of the steps since the checkpoint before it, and the held-out metric
 * when the keeper measures one.
 *
 * <p>The index is read as a file from anyone: bounded in size, strict JSON, every field checked
 * ({@code GRAFT-R140}); a file name must be the one its step gives (no paths), and each listed file
 * must be a regular file in the folder. The checkpoints' contents are checked when they are read
 * (against the graft they are loaded into).
 *
 * @param folder the folder
 * @param graft the graft the checkpoints were saved from
 * @param keep the most checkpoints the folder holds
 * @param everySteps steps between two checkpoints
 * @param metricName the held-out metric's name, or {@code null} when none is measured
 * @param settings the run's settings (batch size, epochs, seed, data size), as its checkpoints record them
 * @param checkpoints the kept checkpoints, oldest first
 */
public record KeptCheckpoints(
    Path folder,
    String graft,
    int keep,
    int everySteps,
    @Nullable String metricName,
    Map<String, String> settings,
    List<Checkpoint> checkpoints) {
  /** The index file's name. */
  public static final String INDEX = "index.json";
  /** The index file's {@code format}. */
  public static final String FORMAT = "graft-kept-checkpoints-1";
  /** The most checkpoints a folder may keep. */
  public static final int MAX_KEEP = 10_000;
  static final long MAX_INDEX_BYTES = 4L * 1024 * 1024;
  private static final Pattern FILE = Pattern.compile("step-[0-9]{8,19}\\.safetensors");

  public KeptCheckpoints {
    settings = Map.copyOf(settings);
    checkpoints = List.copyOf(checkpoints);
  }

  /**
   * One kept checkpoint.
   *
   * @param step the run's 1-based step after which it was saved ({@link TrainingListener.Step#step()})
   * @param epoch the 1-based epoch of that step
   * @param file the checkpoint file
   * @param trainLoss the mean training loss of the steps since the checkpoint before it (its window)
   * @param windowSteps how many steps that mean is over
   * @param metric the held-out metric measured on the saved state, or {@code null} when none is measured
   */
  public record Checkpoint(long step, int epoch, Path file, double trainLoss, int windowSteps, @Nullable Double metric) {}

  /** The file name of the checkpoint of {@code step}. */
  static String fileName(long step) {
    return String.format(Locale.ROOT, "step-%08d.safetensors", step);
  }

  /** Whether {@code name} is a checkpoint file name a keeper writes (its own, or a stray one a crash left). */
  static boolean isCheckpointFile(String name) {
    return FILE.matcher(name).matches();
  }

  /** The last {@code k} checkpoints (all of them when there are fewer). */
  public List<Checkpoint> last(int k) {
    if (k < 1) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "the number of checkpoints must be >= 1, got " + k);
    }
    return checkpoints.subList(Math.max(0, checkpoints.size() - k), checkpoints.size());
  }

  /** The same folder and run with {@code list} as its checkpoints. */
  KeptCheckpoints with(List<Checkpoint> list) {
    return new KeptCheckpoints(folder, graft, keep, everySteps, metricName, settings, list);
  }

  /** Whether {@code folder} has an index. */
  static boolean exists(Path folder) {
    return Files.exists(folder.resolve(INDEX), LinkOption.NOFOLLOW_LINKS);
  }

  /** Reads and checks the index of {@code folder} ({@code GRAFT-R140} when anything is wrong). */
  public static KeptCheckpoints read(Path folder) {
    Path index = folder.resolve(INDEX);
    String src = index.toString();
    String text;
    try {
      if (!Files.isRegularFile(index, LinkOption.NOFOLLOW_LINKS)) {
        throw bad(src, "is missing or not a regular file; expected the index a checkpoint keeper writes");
      }
      long size = Files.size(index);
      if (size > MAX_INDEX_BYTES) {
        throw bad(src, "is " + size + " bytes, more than the " + MAX_INDEX_BYTES + " an index may have");
      }
      text = Files.readString(index, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read " + index + ": " + e, e);
    }
    JsonObject o;
    try {
      o = StrictJson.parseObject(src, text);
    } catch (GraftException e) {
      throw bad(src, e.getMessage());
    }
    String format = string(src, o, "format");
    if (!FORMAT.equals(format)) {
      throw bad(src, "has format '" + format + "', expected '" + FORMAT + "'");
    }
    String graft = string(src, o, "graft");
    int keep = (int) integer(src, o, "keep", 1, MAX_KEEP);
    int every = (int) integer(src, o, "every_steps", 1, Integer.MAX_VALUE);
    String metricName = o.has("metric") ? string(src, o, "metric") : null;
    JsonObject settingsJson = object(src, o, "settings");
    Map<String, String> settings = new TreeMap<>();
    for (Map.Entry<String, JsonElement> e : settingsJson.entrySet()) {
      settings.put(e.getKey(), string(src + " settings", settingsJson, e.getKey()));
    }
    JsonElement list = o.get("checkpoints");
    if (list == null || !list.isJsonArray()) {
      throw bad(src, "has no array 'checkpoints'");
    }
    JsonArray array = list.getAsJsonArray();
    if (array.size() > keep) {
      throw bad(src, "lists " + array.size() + " checkpoints, more than the " + keep + " it keeps");
    }
    List<Checkpoint> out = new ArrayList<>();
    long previous = 0;
    for (int i = 0; i < array.size(); i++) {
      String at = src + " checkpoints[" + i + "]";
      if (!array.get(i).isJsonObject()) {
        throw bad(at, "is not an object");
      }
      JsonObject c = array.get(i).getAsJsonObject();
      long step = integer(at, c, "step", 1, Long.MAX_VALUE);
      if (step <= previous) {
        throw bad(at, "has step " + step + ", expected steps increasing (the one before is " + previous + ")");
      }
      previous = step;
      int epoch = (int) integer(at, c, "epoch", 1, Integer.MAX_VALUE);
      String file = string(at, c, "file");
      if (!file.equals(fileName(step))) {
        throw bad(at, "names file '" + file + "', expected '" + fileName(step) + "' for step " + step);
      }
      Path path = folder.resolve(file);
      if (!Files.isRegularFile(path, LinkOption.NOFOLLOW_LINKS)) {
        throw bad(at, "names " + path + ", which is missing or not a regular file");
      }
      double loss = number(at, c, "train_loss");
      int window = (int) integer(at, c, "window_steps", 1, Integer.MAX_VALUE);
      Double metric = null;
      if (metricName != null) {
        metric = number(at, c, "metric");
      } else if (c.has("metric")) {
        throw bad(at, "has a metric, but the index names none");
      }
      out.add(new Checkpoint(step, epoch, path, loss, window, metric));
    }
    return new KeptCheckpoints(folder, graft, keep, every, metricName, settings, out);
  }

  /** Writes the index atomically. */
  void write() {
    JsonObject o = new JsonObject();
    o.addProperty("format", FORMAT);
    o.addProperty("graft", graft);
    o.addProperty("keep", keep);
    o.addProperty("every_steps", everySteps);
    if (metricName != null) {
      o.addProperty("metric", metricName);
    }
    JsonObject s = new JsonObject();
    new TreeMap<>(settings).forEach(s::addProperty);
    o.add("settings", s);
    JsonArray list = new JsonArray();
    for (Checkpoint c : checkpoints) {
      JsonObject e = new JsonObject();
      e.addProperty("step", c.step());
      e.addProperty("epoch", c.epoch());
      e.addProperty("file", c.file().getFileName().toString());
      e.addProperty("train_loss", c.trainLoss());
      e.addProperty("window_steps", c.windowSteps());
      if (c.metric() != null) {
        e.addProperty("metric", c.metric());
      }
      list.add(e);
    }
    o.add("checkpoints", list);
    String json = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create().toJson(o) + "\n";
    AtomicFiles.write(folder.resolve(INDEX), json.getBytes(StandardCharsets.UTF_8));
  }

  private static GraftException bad(String src, String message) {
    return new GraftException(RuntimeErrorCode.CHECKPOINT_INDEX, src + ": " + message);
  }

  private static JsonPrimitive primitive(String src, JsonObject o, String key) {
    JsonElement e = o.get(key);
    if (e == null || !e.isJsonPrimitive()) {
      throw bad(src, "has no field '" + key + "' (or it is not a string or number), expected one");
    }
    return e.getAsJsonPrimitive();
  }

  private static String string(String src, JsonObject o, String key) {
    JsonPrimitive p = primitive(src, o, key);
    if (!p.isString()) {
      throw bad(src, "field '" + key + "' must be a string, got " + p);
    }
    return p.getAsString();
  }

  private static JsonObject object(String src, JsonObject o, String key) {
    JsonElement e = o.get(key);
    if (e == null || !e.isJsonObject()) {
      throw bad(src, "has no object '" + key + "'");
    }
    return e.getAsJsonObject();
  }

  private static long integer(String src, JsonObject o, String key, long min, long max) {
    JsonPrimitive p = primitive(src, o, key);
    if (!p.isNumber()) {
      throw bad(src, "field '" + key + "' must be an integer, got " + p);
    }
    BigDecimal v = p.getAsBigDecimal();
    try {
      long n = v.longValueExact();
      if (n < min || n > max) {
        throw bad(src, "field '" + key + "' must be in [" + min + ", " + max + "], got " + n);
      }
      return n;
    } catch (ArithmeticException e) {
      throw bad(src, "field '" + key + "' must be an integer in [" + min + ", " + max + "], got " + v.toPlainString());
    }
  }

  private static double number(String src, JsonObject o, String key) {
    JsonPrimitive p = primitive(src, o, key);
    if (!p.isNumber()) {
      throw bad(src, "field '" + key + "' must be a number, got " + p);
    }
    double d = p.getAsBigDecimal().doubleValue();
    if (!Double.isFinite(d)) {
      throw bad(src, "field '" + key + "' must be a finite number, got " + p);
    }
    return d;
  }
}
