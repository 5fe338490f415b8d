package dev.graft.runtime.serve;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.io.StrictJson;
import dev.graft.runtime.text.TextTokenizer;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Manifest;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * An HTTP front of an {@link AdapterServer} on the JDK's {@code com.sun.net.httpserver}, JSON in
 * and out:
 *
 * <ul>
 *   <li>{@code POST /v1/predict} {@code {"adapter": "a" | null, "texts": [...]}} (through the host's
 *       tokenizer) or {@code {"adapter": ..., "input_ids": [[...]], "attention_mask": [[...]], ...}}
 *       (a missing attention mask is all ones, other missing host inputs zeros) → {@code {"adapter",
 *       "logits", "probabilities", "labels"}} (probabilities and labels for classification: softmax and
 *       arg-max; multi-label: sigmoid and the labels over 0.5);
 *   <li>{@code POST /v1/adapters} {@code {"name": "a", "path": "folder"}} (a PEFT folder inside the
 *       adapter root the endpoint was started with; refused without one) or {@code {"name": "a",
 *       "parameters": {"<parameter>": [values]}}} registers; {@code DELETE /v1/adapters/{name}}
 *       unregisters; {@code GET /v1/adapters} lists them;
 *   <li>{@code GET /health}.
 * </ul>
 *
 * Errors are {@code {"error": {"code": "GRAFT-R0xx", "message": ...}}} with a 4xx status (404 an
 * adapter not registered or an unknown path, 405 a method, 413 a body over the limit, 400 anything
 * else the request got wrong), 5xx for the server's own failures. Request bodies are bounded.
 */
public final class HttpEndpoint implements AutoCloseable {
  /** How the endpoint is set up. */
  public record Options(int maxBodyBytes, int maxRows, @Nullable Path adapterRoot, Duration batchDelay, int batchRows) {
    public static Options defaults() {
      return new Options(1 << 20, 256, null, Duration.ofMillis(2), 64);
    }

    public Options withAdapterRoot(@Nullable Path root) {
      return new Options(maxBodyBytes, maxRows, root, batchDelay, batchRows);
    }

    public Options withMaxBodyBytes(int bytes) {
      return new Options(bytes, maxRows, adapterRoot, batchDelay, batchRows);
    }

    /** Micro-batching of concurrent predictions: at most {@code delay} of waiting, {@code rows} rows a batch (1: none). */
    public Options withBatching(Duration delay, int rows) {
      return new Options(maxBodyBytes, maxRows, adapterRoot, delay, rows);
    }
  }

  private static final Pattern ADAPTER_PATH = Pattern.compile("/v1/adapters/([^/]+)");

  private final AdapterServer server;
  private final @Nullable TextTokenizer tokenizer;
  private final Options options;
  private final Manifest manifest;
  private final HttpServer http;
  private final ExecutorService executor;
  private final @Nullable MicroBatcher batcher;

  private HttpEndpoint(AdapterServer server, @Nullable TextTokenizer tokenizer, Manifest manifest,
      InetSocketAddress address, Options options) throws IOException {
    this.server = server;
    this.tokenizer = tokenizer;
    this.options = options;
    this.manifest = manifest;
    this.http = HttpServer.create(address, 64);
    this.executor = Executors.newFixedThreadPool(Math.max(4, Runtime.getRuntime().availableProcessors() * 2));
    this.batcher = options.batchRows() > 1 ? new MicroBatcher(server, options.batchDelay(), options.batchRows()) : null;
    http.createContext("/", this::handle);
    http.setExecutor(executor);
    http.start();
  }

  /**
   * Starts serving {@code server} on {@code address} (port 0: an ephemeral port, see {@link #port()}).
   *
   * @param manifest the served graft's manifest (host inputs, task)
   * @param tokenizer the host's tokenizer for {@code "texts"}, or null to take token ids only
   */
  public static HttpEndpoint start(AdapterServer server, Manifest manifest, @Nullable TextTokenizer tokenizer,
      InetSocketAddress address, Options options) {
    try {
      return new HttpEndpoint(server, tokenizer, manifest, address, options);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot listen on " + address + ": " + e.getMessage(), e);
    }
  }

  /** The port listened on. */
  public int port() {
    return http.getAddress().getPort();
  }

  /** An HTTP-level failure: a status and a coded error. */
  private static final class Failure extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final int status;
    final GraftException error;

    Failure(int status, GraftException error) {
      super(error.getMessage(), error);
      this.status = status;
      this.error = error;
    }
  }

  private static Failure invalid(int status, String message) {
    return new Failure(status, new GraftException(RuntimeErrorCode.REQUEST_INVALID, message));
  }

  private void handle(HttpExchange ex) throws IOException {
    try (ex) {
      int status = 200;
      JsonObject body;
      try {
        body = route(ex);
      } catch (Failure f) {
        status = f.status;
        body = error(f.error);
      } catch (GraftException e) {
        status = status(e.getErrorCode());
        body = error(e);
      } catch (RuntimeException e) {
        status = 500;
        body = error(new GraftException(RuntimeErrorCode.REQUEST_INVALID, "the server failed: " + e, e));
      }
      byte[] bytes = body.toString().getBytes(StandardCharsets.UTF_8);
      ex.getResponseHeaders().set("Content-Type", "application/json; charset=utf-8");
      ex.sendResponseHeaders(status, bytes.length);
      try (OutputStream out = ex.getResponseBody()) {
        out.write(bytes);
      }
    }
  }

  private JsonObject route(HttpExchange ex) throws IOException {
    String path = ex.getRequestURI().getPath();
    String method = ex.getRequestMethod();
    var adapter = ADAPTER_PATH.matcher(path);
    switch (path) {
      case "/health" -> {
        requireMethod(method, "GET");
        JsonObject o = new JsonObject();
        o.addProperty("status", "ok");
        o.addProperty("graft", manifest.getName());
        return o;
      }
      case "/v1/predict" -> {
        requireMethod(method, "POST");
        return predict(body(ex));
      }
      case "/v1/adapters" -> {
        if (method.equals("GET")) {
          return adapters();
        }
        requireMethod(method, "POST");
        return register(body(ex));
      }
      default -> {
        if (adapter.matches()) {
          requireMethod(method, "DELETE");
          server.unregister(adapter.group(1));
          return adapters();
        }
        throw invalid(404, "no endpoint " + path + "; the endpoints are GET /health, POST /v1/predict,"
            + " GET and POST /v1/adapters, DELETE /v1/adapters/{name}");
      }
    }
  }

  private static void requireMethod(String method, String expected) {
    if (!method.equals(expected)) {
      throw invalid(405, "method " + method + " is not allowed here; expected " + expected);
    }
  }

  private JsonObject body(HttpExchange ex) throws IOException {
    try (InputStream in = ex.getRequestBody()) {
      byte[] bytes = in.readNBytes(options.maxBodyBytes() + 1);
      if (bytes.length > options.maxBodyBytes()) {
        throw invalid(413, "the request body is over the limit of " + options.maxBodyBytes() + " bytes");
      }
      try {
        return StrictJson.parseObject("the request body", new String(bytes, StandardCharsets.UTF_8));
      } catch (GraftException e) {
        throw invalid(400, e.getMessage());
      }
    }
  }

  private JsonObject adapters() {
    JsonObject o = new JsonObject();
    JsonArray names = new JsonArray();
    server.adapters().forEach(names::add);
    o.add("adapters", names);
    o.addProperty("capacity", server.capacity());
    JsonObject ranks = new JsonObject();
    server.ranks().forEach(ranks::addProperty);
    o.add("ranks", ranks);
    return o;
  }

  private JsonObject register(JsonObject body) {
    String name = string(body, "name");
    if (body.has("path") == body.has("parameters")) {
      throw invalid(400, "register with exactly one of \"path\" (an adapter folder) or \"parameters\"");
    }
    if (body.has("path")) {
      Path root = options.adapterRoot();
      if (root == null) {
        throw invalid(403, "registering from a path is off: start the server with an adapter root");
      }
      server.register(name, inside(root, string(body, "path")));
    } else {
      JsonObject params = object(body, "parameters");
      Map<String, float[]> values = new LinkedHashMap<>();
      for (Map.Entry<String, JsonElement> e : params.entrySet()) {
        values.put(e.getKey(), floats(e.getKey(), e.getValue()));
      }
      server.register(name, values);
    }
    return adapters();
  }

  /** {@code given} resolved in {@code root}, which it may not leave (no absolute path, no {@code ..}, no link out). */
  private static Path inside(Path root, String given) {
    Path rel = Path.of(given);
    if (rel.isAbsolute() || rel.normalize().startsWith("..") || given.isEmpty()) {
      throw invalid(400, "adapter path '" + given + "' must be relative to the adapter root, inside it");
    }
    try {
      Path realRoot = root.toRealPath();
      Path real = realRoot.resolve(rel).normalize().toRealPath();
      if (!real.startsWith(realRoot) || !Files.isDirectory(real)) {
        throw invalid(400, "adapter path '" + given + "' is not a folder inside the adapter root");
      }
      return real;
    } catch (IOException e) {
      throw invalid(400, "adapter path '" + given + "' cannot be read: " + e.getMessage());
    }
  }

  private JsonObject predict(JsonObject body) {
    if (!manifest.hasHead()) {
      throw invalid(400, "graft " + manifest.getName() + " has no pooled head; /v1/predict serves heads only");
    }
    String adapter = null;
    if (body.has("adapter") && !body.get("adapter").isJsonNull()) {
      adapter = string(body, "adapter");
    }
    Map<String, long[][]> inputs = body.has("texts") ? texts(body) : ids(body);
    int rows = inputs.values().iterator().next().length;
    if (rows == 0 || rows > options.maxRows()) {
      throw invalid(400, "a request holds 1 to " + options.maxRows() + " rows, got " + rows);
    }
    AdapterServer.Request request = new AdapterServer.Request(adapter, inputs);
    AdapterServer.Prediction p;
    if (batcher != null) {
      try {
        p = batcher.submit(request).get();
      } catch (ExecutionException e) {
        throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new GraftException(RuntimeErrorCode.CLOSED, "interrupted while waiting for the batch");
      }
    } else {
      p = server.run(List.of(request)).get(0);
    }
    return answer(adapter, p.logits());
  }

  private JsonObject answer(@Nullable String adapter, float[][] logits) {
    JsonObject o = new JsonObject();
    o.add("adapter", adapter == null ? com.google.gson.JsonNull.INSTANCE : new JsonPrimitive(adapter));
    JsonArray ls = new JsonArray();
    JsonArray ps = new JsonArray();
    JsonArray labels = new JsonArray();
    Loss loss = manifest.getTask().getLoss();
    boolean softmax = loss == Loss.SOFTMAX_CROSS_ENTROPY || loss == Loss.LOSS_UNSPECIFIED;
    boolean sigmoid = loss == Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS;
    for (float[] row : logits) {
      ls.add(array(row));
      if (softmax) {
        double max = Double.NEGATIVE_INFINITY;
        int best = 0;
        for (int i = 0; i < row.length; i++) {
          if (row[i] > max) {
            max = row[i];
            best = i;
          }
        }
        double sum = 0;
        float[] prob = new float[row.length];
        for (float v : row) {
          sum += Math.exp(v - max);
        }
        for (int i = 0; i < row.length; i++) {
          prob[i] = (float) (Math.exp(row[i] - max) / sum);
        }
        ps.add(array(prob));
        labels.add(best);
      } else if (sigmoid) {
        float[] prob = new float[row.length];
        JsonArray on = new JsonArray();
        for (int i = 0; i < row.length; i++) {
          prob[i] = (float) (1 / (1 + Math.exp(-row[i])));
          if (prob[i] > 0.5) {
            on.add(i);
          }
        }
        ps.add(array(prob));
        labels.add(on);
      }
    }
    o.add("logits", ls);
    if (softmax || sigmoid) {
      o.add("probabilities", ps);
      o.add("labels", labels);
    }
    return o;
  }

  private static JsonArray array(float[] row) {
    JsonArray a = new JsonArray();
    for (float v : row) {
      a.add(v);
    }
    return a;
  }

  private Map<String, long[][]> texts(JsonObject body) {
    if (tokenizer == null) {
      throw invalid(400, "this server has no tokenizer; send \"input_ids\" instead of \"texts\"");
    }
    JsonArray texts = array(body, "texts");
    if (texts.isEmpty() || texts.size() > options.maxRows()) {
      throw invalid(400, "\"texts\" holds 1 to " + options.maxRows() + " texts, got " + texts.size());
    }
    List<String> list = new ArrayList<>();
    for (JsonElement e : texts) {
      if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
        throw invalid(400, "\"texts\" must be an array of strings, got " + e);
      }
      list.add(e.getAsString());
    }
    List<Map<String, long[]>> encoded = tokenizer.encodeAll(list);
    int length = 0;
    for (Map<String, long[]> m : encoded) {
      length = Math.max(length, m.get(TextTokenizer.INPUT_IDS).length);
    }
    Map<String, long[][]> inputs = new LinkedHashMap<>();
    for (HostInput in : manifest.getInputsList()) {
      long[][] rows = new long[list.size()][];
      for (int i = 0; i < rows.length; i++) {
        long[] v = encoded.get(i).get(in.getName());
        if (v == null) {
          throw invalid(400, "the tokenizer gives no '" + in.getName() + "', which the host takes; send token ids");
        }
        rows[i] = java.util.Arrays.copyOf(v, length);
      }
      inputs.put(in.getName(), rows);
    }
    return inputs;
  }

  private Map<String, long[][]> ids(JsonObject body) {
    if (!body.has(TextTokenizer.INPUT_IDS)) {
      throw invalid(400, "send \"texts\" or \"input_ids\"");
    }
    long[][] ids = longs(TextTokenizer.INPUT_IDS, body.get(TextTokenizer.INPUT_IDS));
    Map<String, long[][]> inputs = new LinkedHashMap<>();
    for (HostInput in : manifest.getInputsList()) {
      if (body.has(in.getName())) {
        inputs.put(in.getName(), longs(in.getName(), body.get(in.getName())));
      } else {
        long[][] filled = new long[ids.length][];
        for (int i = 0; i < ids.length; i++) {
          filled[i] = new long[ids[i].length];
          if (in.getMask()) {
            java.util.Arrays.fill(filled[i], 1);
          }
        }
        inputs.put(in.getName(), filled);
      }
    }
    for (String key : body.keySet()) {
      if (!key.equals("adapter") && !inputs.containsKey(key)) {
        throw invalid(400, "unknown field \"" + key + "\"; the host's inputs are " + inputs.keySet());
      }
    }
    return inputs;
  }

  private static String string(JsonObject o, String field) {
    JsonElement e = o.get(field);
    if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
      throw invalid(400, "\"" + field + "\" must be a string, got " + e);
    }
    return e.getAsString();
  }

  private static JsonObject object(JsonObject o, String field) {
    JsonElement e = o.get(field);
    if (e == null || !e.isJsonObject()) {
      throw invalid(400, "\"" + field + "\" must be an object");
    }
    return e.getAsJsonObject();
  }

  private static JsonArray array(JsonObject o, String field) {
    JsonElement e = o.get(field);
    if (e == null || !e.isJsonArray()) {
      throw invalid(400, "\"" + field + "\" must be an array");
    }
    return e.getAsJsonArray();
  }

  private static long[][] longs(String field, JsonElement e) {
    if (!e.isJsonArray()) {
      throw invalid(400, "\"" + field + "\" must be an array of arrays of integers");
    }
    JsonArray rows = e.getAsJsonArray();
    long[][] out = new long[rows.size()][];
    for (int i = 0; i < out.length; i++) {
      if (!rows.get(i).isJsonArray()) {
        throw invalid(400, "\"" + field + "\" row " + i + " must be an array of integers");
      }
      JsonArray row = rows.get(i).getAsJsonArray();
      out[i] = new long[row.size()];
      for (int j = 0; j < out[i].length; j++) {
        JsonElement v = row.get(j);
        if (!v.isJsonPrimitive() || !v.getAsJsonPrimitive().isNumber()) {
          throw invalid(400, "\"" + field + "\"[" + i + "][" + j + "] must be an integer, got " + v);
        }
        try {
          out[i][j] = v.getAsBigDecimal().longValueExact();
        } catch (ArithmeticException ex) {
          throw invalid(400, "\"" + field + "\"[" + i + "][" + j + "] must be an integer, got " + v);
        }
      }
    }
    return out;
  }

  private static float[] floats(String field, JsonElement e) {
    if (!e.isJsonArray()) {
      throw invalid(400, "parameter \"" + field + "\" must be an array of numbers");
    }
    JsonArray a = e.getAsJsonArray();
    float[] out = new float[a.size()];
    for (int i = 0; i < out.length; i++) {
      JsonElement v = a.get(i);
      if (!v.isJsonPrimitive() || !v.getAsJsonPrimitive().isNumber() || !Float.isFinite(v.getAsFloat())) {
        throw invalid(400, "parameter \"" + field + "\"[" + i + "] must be a finite number, got " + v);
      }
      out[i] = v.getAsFloat();
    }
    return out;
  }

  private static JsonObject error(GraftException e) {
    JsonObject inner = new JsonObject();
    inner.addProperty("code", e.getErrorCode().code());
    inner.addProperty("message", e.getMessage());
    JsonObject o = new JsonObject();
    o.add("error", inner);
    return o;
  }

  private static int status(RuntimeErrorCode code) {
    return switch (code) {
      case ADAPTER_NOT_REGISTERED -> 404;
      case REQUEST_INVALID, ARGUMENT, TENSOR_MISMATCH, UNKNOWN_NAME, FORMAT, IO -> 400;
      case CLOSED -> 503;
      default -> 500;
    };
  }

  /** Stops listening (requests in flight get a second to finish), then the batching thread; the server stays open. */
  @Override
  public void close() {
    http.stop(1);
    executor.shutdownNow();
    if (batcher != null) {
      batcher.close();
    }
  }
}
