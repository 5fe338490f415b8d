package dev.graft.tools.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.text.TextTokenizer;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.MiniLmHost;
import dev.graft.testing.TinyBertHost;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The serve command started on an ephemeral port and driven with {@link HttpClient}: a LoRA graft
 * (3 classes) on the tiny BERT with two adapters from saved folders, answers equal to {@code
 * AdapterModel.predict} within 1e-5 (token ids in, logits, softmax probabilities and arg-max
 * labels out), concurrent requests micro-batched, registering and unregistering over HTTP, and
 * every error as JSON with its code and a 4xx status; and texts through MiniLM's tokenizer.
 */
class ServeCommandTest {
  private static final double TOLERANCE = 1e-5;
  @TempDir static Path dir;
  private static Path host;
  private static AdapterModel model;
  private static ServeCommand serve;
  private static final HttpClient CLIENT = HttpClient.newHttpClient();
  private static final Map<String, Map<String, float[]>> ADAPTERS = new LinkedHashMap<>();

  @BeforeAll
  static void start() throws Exception {
    host = dir.resolve("tiny.onnx");
    Files.write(host, OnnxExport.write(TinyBertHost.graph(7), "tiny").toByteArray());
    CompiledGraft graft = Graft.host(host).name("Served").lora(".*/attention/self/(query|value)/MatMul", l -> l.rank(4))
        .classification(3).compile(GraphVariant.GATHERED);
    graft.writeTo(dir.resolve("graft"));
    model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withTraining(false));
    Path root = dir.resolve("adapters");
    for (String a : List.of("a", "b", "c")) {
      Map<String, float[]> v = random(model.getParameters(), a.hashCode());
      ADAPTERS.put(a, v);
      v.forEach(model::setParameter);
      model.saveAdapter(root.resolve(a));
    }
    serve = ServeCommand.start("--graft", dir.resolve("graft").toString(), "--name", "Served", "--host", host.toString(),
        "--adapter", "a=" + root.resolve("a"), "--adapter", "b=" + root.resolve("b"),
        "--adapter-root", root.toString(), "--port", "0", "--max-body-bytes", "20000");
  }

  @AfterAll
  static void stop() {
    serve.close();
    model.close();
  }

  private static Map<String, float[]> random(List<Parameter> parameters, long seed) {
    Random r = new Random(seed);
    Map<String, float[]> v = new LinkedHashMap<>();
    for (Parameter p : parameters) {
      float[] x = new float[(int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b)];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) (0.4 * r.nextGaussian());
      }
      v.put(p.getName(), x);
    }
    return v;
  }

  private record Reply(int status, JsonObject body) {}

  private static Reply call(String method, String path, String body) throws Exception {
    return call(serve, method, path, body);
  }

  private static Reply call(ServeCommand server, String method, String path, String body) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + path));
    b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
    HttpResponse<String> r = CLIENT.send(b.build(), HttpResponse.BodyHandlers.ofString());
    assertEquals("application/json; charset=utf-8", r.headers().firstValue("Content-Type").orElse(""));
    return new Reply(r.statusCode(), JsonParser.parseString(r.body()).getAsJsonObject());
  }

  private static final long[][] IDS = {{3, 7, 12, 8, 1, 5}, {9, 13, 2, 4, 0, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}};
  private static final long[][] TYPES = {{0, 0, 0, 1, 1, 1}, {0, 0, 1, 1, 0, 0}};

  private static String predictBody(String adapter) {
    JsonObject o = new JsonObject();
    o.addProperty("adapter", adapter);
    o.add("input_ids", json(IDS));
    o.add("attention_mask", json(MASK));
    o.add("token_type_ids", json(TYPES));
    return o.toString();
  }

  private static JsonArray json(long[][] rows) {
    JsonArray a = new JsonArray();
    for (long[] row : rows) {
      JsonArray r = new JsonArray();
      for (long v : row) {
        r.add(v);
      }
      a.add(r);
    }
    return a;
  }

  private static synchronized float[][] expected(String adapter, Map<String, long[][]> in) {
    ADAPTERS.get(adapter).forEach(model::setParameter);
    return model.predict(in);
  }

  private static double check(float[][] expected, JsonObject answer) {
    JsonArray logits = answer.getAsJsonArray("logits");
    JsonArray probabilities = answer.getAsJsonArray("probabilities");
    JsonArray labels = answer.getAsJsonArray("labels");
    assertEquals(expected.length, logits.size());
    double worst = 0;
    for (int i = 0; i < expected.length; i++) {
      JsonArray row = logits.get(i).getAsJsonArray();
      assertEquals(expected[i].length, row.size());
      int best = 0;
      double sum = 0;
      for (int j = 0; j < row.size(); j++) {
        worst = Math.max(worst, Math.abs(row.get(j).getAsFloat() - expected[i][j]));
        best = expected[i][j] > expected[i][best] ? j : best;
        sum += probabilities.get(i).getAsJsonArray().get(j).getAsDouble();
      }
      assertEquals(1, sum, 1e-5);
      assertEquals(best, labels.get(i).getAsInt());
    }
    return worst;
  }

  @Test
  void predictsEachAdapterAsAdapterModelDoes() throws Exception {
    Map<String, long[][]> in = Map.of("input_ids", IDS, "attention_mask", MASK, "token_type_ids", TYPES);
    double worst = 0;
    for (String a : List.of("a", "b")) {
      Reply r = call("POST", "/v1/predict", predictBody(a));
      assertEquals(200, r.status(), r.body().toString());
      assertEquals(a, r.body().get("adapter").getAsString());
      worst = Math.max(worst, check(expected(a, in), r.body()));
    }
    // No adapter: a zero head.
    Reply none = call("POST", "/v1/predict", predictBody(null).replace("\"adapter\":null,", ""));
    assertEquals(200, none.status(), none.body().toString());
    for (JsonElement row : none.body().getAsJsonArray("logits")) {
      row.getAsJsonArray().forEach(v -> assertEquals(0f, v.getAsFloat()));
    }
    // Token ids alone: the mask is all ones and the token types zeros.
    Reply idsOnly = call("POST", "/v1/predict", "{\"adapter\": \"b\", \"input_ids\": [[3, 7, 12], [9, 13, 2]]}");
    long[][] ids = {{3, 7, 12}, {9, 13, 2}};
    worst = Math.max(worst, check(expected("b", Map.of("input_ids", ids, "attention_mask", new long[][] {{1, 1, 1}, {1, 1, 1}},
        "token_type_ids", new long[2][3])), idsOnly.body()));
    assertTrue(worst <= TOLERANCE, "max |difference| " + worst);
    System.out.printf("ServeCommandTest HTTP answers against AdapterModel.predict: max |difference| %.3g%n", worst);
  }

  @Test
  void concurrentRequestsAreAnsweredEachWithItsAdapter() throws Exception {
    Map<String, long[][]> in = Map.of("input_ids", IDS, "attention_mask", MASK, "token_type_ids", TYPES);
    Map<String, float[][]> expected = Map.of("a", expected("a", in), "b", expected("b", in));
    List<CompletableFuture<HttpResponse<String>>> calls = new ArrayList<>();
    List<String> names = new ArrayList<>();
    for (int i = 0; i < 24; i++) {
      String a = i % 3 == 0 ? "b" : "a";
      names.add(a);
      calls.add(CLIENT.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + serve.port() + "/v1/predict"))
          .POST(HttpRequest.BodyPublishers.ofString(predictBody(a))).build(), HttpResponse.BodyHandlers.ofString()));
    }
    double worst = 0;
    for (int i = 0; i < calls.size(); i++) {
      HttpResponse<String> r = calls.get(i).get();
      assertEquals(200, r.statusCode(), r.body());
      worst = Math.max(worst, check(expected.get(names.get(i)), JsonParser.parseString(r.body()).getAsJsonObject()));
    }
    assertTrue(worst <= TOLERANCE, "max |difference| " + worst);
  }

  @Test
  void registersAndUnregistersOverHttp() throws Exception {
    Reply listed = call("GET", "/v1/adapters", null);
    assertEquals(200, listed.status());
    assertTrue(listed.body().getAsJsonArray("adapters").toString().contains("\"a\""));
    Reply added = call("POST", "/v1/adapters", "{\"name\": \"c\", \"path\": \"c\"}");
    assertEquals(200, added.status(), added.body().toString());
    assertTrue(added.body().getAsJsonArray("adapters").toString().contains("\"c\""));
    Map<String, long[][]> in = Map.of("input_ids", IDS, "attention_mask", MASK, "token_type_ids", TYPES);
    assertTrue(check(expected("c", in), call("POST", "/v1/predict", predictBody("c")).body()) <= TOLERANCE);
    Reply escape = call("POST", "/v1/adapters", "{\"name\": \"x\", \"path\": \"../graft\"}");
    assertError(escape, 400, "GRAFT-R061", "inside");
    Reply deleted = call("DELETE", "/v1/adapters/c", null);
    assertEquals(200, deleted.status());
    assertFalse(deleted.body().getAsJsonArray("adapters").toString().contains("\"c\""));
    assertError(call("POST", "/v1/predict", predictBody("c")), 404, "GRAFT-R060", "'c' is not registered");
    assertError(call("DELETE", "/v1/adapters/c", null), 404, "GRAFT-R060", "'c'");
    // Parameters inline: a wrong length is refused, naming the parameter.
    String name = model.getParameters().get(0).getName();
    Reply wrong = call("POST", "/v1/adapters", "{\"name\": \"d\", \"parameters\": {\"" + name + "\": [1, 2]}}");
    assertError(wrong, 400, "GRAFT-R002", name);
  }

  private static void assertError(Reply r, int status, String code, String text) {
    assertEquals(status, r.status(), r.body().toString());
    JsonObject e = r.body().getAsJsonObject("error");
    assertEquals(code, e.get("code").getAsString(), r.body().toString());
    assertTrue(e.get("message").getAsString().contains(text), e.get("message").getAsString());
  }

  @Test
  void badRequestsAreCodedJsonErrors() throws Exception {
    assertEquals(200, call("GET", "/health", null).status());
    assertEquals("ok", call("GET", "/health", null).body().get("status").getAsString());
    assertError(call("POST", "/v1/predict", "{\"adapter\": \"a\", \"input_ids\": [[1, 2"), 400, "GRAFT-R061", "JSON");
    assertError(call("POST", "/v1/predict", "{\"adapter\": \"zz\", \"input_ids\": [[1, 2]]}"), 404, "GRAFT-R060", "[a, b");
    assertError(call("POST", "/v1/predict", "{\"adapter\": \"a\", \"input_ids\": [[1.5]]}"), 400, "GRAFT-R061", "integer");
    assertError(call("POST", "/v1/predict", "{\"adapter\": \"a\", \"input_ids\": [[1]], \"labels\": [1]}"), 400,
        "GRAFT-R061", "unknown field \"labels\"");
    assertError(call("POST", "/v1/predict", "{\"adapter\": \"a\", \"texts\": [\"hello\"]}"), 400, "GRAFT-R061", "tokenizer");
    assertError(call("POST", "/v1/predict", "{\"input_ids\": [[1, 2]], \"attention_mask\": [[1]]}"), 400, "GRAFT-R002",
        "attention_mask");
    assertError(call("POST", "/v1/predict", "{\"input_ids\": [[" + "1, ".repeat(10_000) + "1]]}"), 413, "GRAFT-R061",
        "20000 bytes");
    assertError(call("GET", "/v1/predict", null), 405, "GRAFT-R061", "POST");
    assertError(call("GET", "/v2/nothing", null), 404, "GRAFT-R061", "/v1/predict");
  }

  @Test
  void badCommandLinesAreRefused() {
    assertTrue(assertThrows(ServeCommand.Invalid.class, () -> ServeCommand.start("--name", "x")).getMessage()
        .contains("--graft is required"));
    assertTrue(assertThrows(ServeCommand.Invalid.class, () -> ServeCommand.start("--graft", "g", "--adapter", "a"))
        .getMessage().contains("<name>=<folder>"));
    assertTrue(assertThrows(ServeCommand.Invalid.class, () -> ServeCommand.start("--graft", "g", "--nope", "1"))
        .getMessage().contains("unknown option '--nope'"));
  }

  /** Texts through MiniLM's own tokenizer, on the real host: the same logits as AdapterModel on the same tokens. */
  @Test
  void textsGoThroughTheHostsTokenizer() throws Exception {
    CompiledGraft graft = Graft.host(MiniLmHost.get()).name("MiniServed").lora("", l -> l.rank(4)).classification(2)
        .compile(GraphVariant.GATHERED);
    graft.writeTo(dir.resolve("mini"));
    String tokenizerName = "all-minilm-l6-v2-tokenizer.json";
    List<String> texts = List.of("a wonderful little film", "the battery died after two days, awful");
    try (AdapterModel mini = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withTraining(false));
        TextTokenizer tokenizer = TextTokenizer.fromClasspath(getClass().getClassLoader(), tokenizerName, 64)) {
      Map<String, float[]> v = random(mini.getParameters(), 5);
      v.forEach(mini::setParameter);
      mini.saveAdapter(dir.resolve("mini-adapter"));
      List<Map<String, long[]>> enc = tokenizer.encodeAll(texts);
      int length = Math.max(enc.get(0).get("input_ids").length, enc.get(1).get("input_ids").length);
      Map<String, long[][]> in = new LinkedHashMap<>();
      for (String name : List.of("input_ids", "attention_mask", "token_type_ids")) {
        in.put(name, new long[][] {java.util.Arrays.copyOf(enc.get(0).get(name), length),
            java.util.Arrays.copyOf(enc.get(1).get(name), length)});
      }
      float[][] expected = mini.predict(in);
      try (ServeCommand s = ServeCommand.start("--graft", dir.resolve("mini").toString(), "--name", "MiniServed",
          "--tokenizer", tokenizerName, "--max-length", "64", "--adapter", "m=" + dir.resolve("mini-adapter"),
          "--port", "0")) {
        Reply r = call(s, "POST", "/v1/predict", "{\"adapter\": \"m\", \"texts\": [\"" + texts.get(0) + "\", \""
            + texts.get(1) + "\"]}");
        assertEquals(200, r.status(), r.body().toString());
        double worst = check(expected, r.body());
        assertTrue(worst <= TOLERANCE, "max |difference| " + worst);
        System.out.printf("ServeCommandTest MiniLM texts: max |difference| %.3g%n", worst);
      }
    }
  }
}
