package dev.graft.runtime.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.TinyBertHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The multi-adapter server on the tiny BERT (float32) with LoRA on every query and value and
 * the intermediate dense layers (rank 4) and a 3-class head: adapters with random non-zero
 * parameters (their own heads included) registered side by side; every row of a mixed batch
 * equals {@code AdapterModel.predict} with that row's adapter within 1e-5, rows of no adapter
 * give the host's own output (and a zero head); slots are freed and reused; unknown adapters are
 * {@code GRAFT-R060}; many threads predicting while another registers and unregisters all get
 * their own adapter's answer.
 */
class AdapterServerTest {
  private static final double TOLERANCE = 1e-5;
  private static final String SITES = ".*/(attention/self/(query|value)|intermediate/dense)/MatMul";
  @TempDir static Path dir;
  private static Path host;
  private static CompiledGraft graft;
  private static AdapterModel model;
  private static final Map<String, Map<String, float[]>> ADAPTERS = new LinkedHashMap<>();

  @BeforeAll
  static void compile() throws Exception {
    host = dir.resolve("tiny.onnx");
    Files.write(host, OnnxExport.write(TinyBertHost.graph(7), "tiny").toByteArray());
    graft = Graft.host(host).name("Served").lora(SITES, l -> l.rank(4)).classification(3).compile(GraphVariant.GATHERED);
    model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withTraining(false));
    for (int a = 0; a < 6; a++) {
      ADAPTERS.put("a" + a, random(100 + a));
    }
  }

  @AfterAll
  static void close() {
    model.close();
  }

  private static Map<String, float[]> random(long seed) {
    Random r = new Random(seed);
    Map<String, float[]> v = new LinkedHashMap<>();
    for (Parameter p : model.getParameters()) {
      float[] x = new float[(int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b)];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) (0.4 * r.nextGaussian());
      }
      v.put(p.getName(), x);
    }
    return v;
  }

  private static Map<String, long[][]> inputs(long seed, int rows, int length) {
    Random r = new Random(seed);
    long[][] ids = new long[rows][length];
    long[][] mask = new long[rows][length];
    long[][] types = new long[rows][length];
    for (int i = 0; i < rows; i++) {
      int valid = 1 + r.nextInt(length);
      for (int t = 0; t < length; t++) {
        ids[i][t] = t < valid ? r.nextInt(50) : 0;
        mask[i][t] = t < valid ? 1 : 0;
        types[i][t] = t < valid ? r.nextInt(2) : 0;
      }
    }
    return Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types);
  }

  /** What AdapterModel.predict gives with {@code adapter}'s parameters. */
  private static synchronized float[][] expected(String adapter, Map<String, long[][]> in) {
    ADAPTERS.get(adapter).forEach(model::setParameter);
    return model.predict(in);
  }

  private static double worst(float[][] expected, float[][] actual) {
    assertEquals(expected.length, actual.length);
    double worst = 0;
    for (int i = 0; i < expected.length; i++) {
      assertEquals(expected[i].length, actual[i].length);
      for (int j = 0; j < expected[i].length; j++) {
        worst = Math.max(worst, Math.abs(expected[i][j] - actual[i][j]));
      }
    }
    return worst;
  }

  private static AdapterServer server() {
    return AdapterServer.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host));
  }

  @Test
  void mixedBatchEqualsEachAdaptersPredict() throws Exception {
    try (AdapterServer server = server()) {
      for (String a : List.of("a0", "a1", "a2")) {
        server.register(a, ADAPTERS.get(a));
      }
      List<AdapterServer.Request> requests = List.of(
          new AdapterServer.Request("a1", inputs(1, 3, 7)),
          new AdapterServer.Request(null, inputs(2, 2, 7)),
          new AdapterServer.Request("a0", inputs(3, 1, 7)),
          new AdapterServer.Request("a2", inputs(4, 4, 5)),
          new AdapterServer.Request("a1", inputs(5, 2, 7)));
      List<AdapterServer.Prediction> out = server.run(requests);
      double worst = 0;
      for (int i = 0; i < requests.size(); i++) {
        AdapterServer.Request q = requests.get(i);
        if (q.adapter() == null) {
          for (float[] row : out.get(i).logits()) {
            for (float v : row) {
              assertEquals(0f, v, "no adapter: a zero head");
            }
          }
          float[][] bare = bareHost(q.inputs());
          worst = Math.max(worst, worst(bare, out.get(i).hostOutput()));
        } else {
          float[][] e = expected(q.adapter(), q.inputs());
          double w = worst(e, out.get(i).logits());
          assertTrue(w > 0 || e[0][0] != 0, "the adapter's logits are not trivially zero");
          worst = Math.max(worst, w);
        }
      }
      assertTrue(worst <= TOLERANCE, "max |difference| " + worst);
      // The adapters differ: a row of a1 is not a0's answer.
      Map<String, long[][]> same = inputs(9, 2, 6);
      assertTrue(worst(server.predict("a0", same), server.predict("a1", same)) > 1e-2);
      System.out.printf("AdapterServerTest mixed batch of 12 rows, 3 adapters + none: max |difference| %.3g%n", worst);
    }
  }

  /** The host's own output, run on the bare host graph in a plain session. */
  private static float[][] bareHost(Map<String, long[][]> in) throws Exception {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession s = env.createSession(Files.readAllBytes(host), new OrtSession.SessionOptions())) {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      for (var e : in.entrySet()) {
        feeds.put(e.getKey(), OnnxTensor.createTensor(env, e.getValue()));
      }
      try (OrtSession.Result r = s.run(feeds)) {
        float[][][] h = (float[][][]) r.get(0).getValue();
        float[][] flat = new float[h.length][];
        for (int i = 0; i < h.length; i++) {
          flat[i] = new float[h[i].length * h[i][0].length];
          for (int t = 0; t < h[i].length; t++) {
            System.arraycopy(h[i][t], 0, flat[i], t * h[i][t].length, h[i][t].length);
          }
        }
        return flat;
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }
  }

  @Test
  void unregisterFreesTheSlotAndUnknownAdaptersAreRefused() {
    try (AdapterServer server = server()) {
      server.register("a0", ADAPTERS.get("a0"));
      server.register("a1", ADAPTERS.get("a1"));
      server.register("a2", ADAPTERS.get("a2"));
      int slot = server.slots().get("a1");
      int capacity = server.capacity();
      server.unregister("a1");
      assertEquals(List.of("a0", "a2"), server.adapters());
      Map<String, long[][]> in = inputs(7, 2, 6);
      GraftException e = assertThrows(GraftException.class, () -> server.predict("a1", in));
      assertEquals(RuntimeErrorCode.ADAPTER_NOT_REGISTERED, e.getErrorCode());
      assertTrue(e.getMessage().contains("GRAFT-R060") && e.getMessage().contains("'a1'")
          && e.getMessage().contains("[a0, a2]"), e.getMessage());
      assertEquals(RuntimeErrorCode.ADAPTER_NOT_REGISTERED,
          assertThrows(GraftException.class, () -> server.unregister("a1")).getErrorCode());
      server.register("a3", ADAPTERS.get("a3"));
      assertEquals(slot, server.slots().get("a3"), "the freed slot is reused");
      assertEquals(capacity, server.capacity());
      assertTrue(worst(expected("a3", in), server.predict("a3", in)) <= TOLERANCE);
      assertTrue(worst(expected("a2", in), server.predict("a2", in)) <= TOLERANCE);
      // Replacing an adapter under its name keeps its slot and serves the new values.
      server.register("a0", ADAPTERS.get("a4"));
      assertTrue(worst(expected("a4", in), server.predict("a0", in)) <= TOLERANCE);
      GraftException unknown = assertThrows(GraftException.class,
          () -> server.register("bad", Map.of("no.such.parameter", new float[1])));
      assertEquals(RuntimeErrorCode.UNKNOWN_NAME, unknown.getErrorCode());
      assertEquals(List.of("a0", "a2", "a3"), server.adapters(), "a refused registration changes nothing");
    }
    try (AdapterServer small = AdapterServer.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host), 2)) {
      small.register("a0", ADAPTERS.get("a0"));
      small.register("a1", ADAPTERS.get("a1"));
      GraftException full = assertThrows(GraftException.class, () -> small.register("a2", ADAPTERS.get("a2")));
      assertEquals(RuntimeErrorCode.ARGUMENT, full.getErrorCode());
      assertTrue(full.getMessage().contains("holds 2 adapters, its limit"), full.getMessage());
      small.register("a1", ADAPTERS.get("a2"));
      assertEquals(List.of("a0", "a1"), small.adapters(), "replacing under a name is not one more");
    }
  }

  @Test
  void registersFromAnAdapterFolder() {
    Path folder = dir.resolve("a5");
    synchronized (AdapterServerTest.class) {
      ADAPTERS.get("a5").forEach(model::setParameter);
      model.saveAdapter(folder);
    }
    try (AdapterServer server = server()) {
      server.register("saved", folder);
      Map<String, long[][]> in = inputs(11, 3, 8);
      assertTrue(worst(expected("a5", in), server.predict("saved", in)) <= TOLERANCE);
    }
  }

  @Test
  void concurrentRequestsAndRegistrationsEachGetTheirAdapter() throws Exception {
    List<Map<String, long[][]>> batches = new ArrayList<>();
    Map<String, List<float[][]>> expected = new HashMap<>();
    for (int b = 0; b < 4; b++) {
      batches.add(inputs(20 + b, 2, 6));
    }
    for (String a : List.of("a0", "a1", "a2", "a3")) {
      List<float[][]> e = new ArrayList<>();
      for (Map<String, long[][]> in : batches) {
        e.add(expected(a, in));
      }
      expected.put(a, e);
    }
    try (AdapterServer server = server()) {
      server.register("a0", ADAPTERS.get("a0"));
      server.register("a1", ADAPTERS.get("a1"));
      AtomicBoolean stop = new AtomicBoolean();
      ExecutorService pool = Executors.newFixedThreadPool(9);
      try {
        // One thread keeps registering a2/a3 (growing the stacks) and unregistering them.
        Future<Integer> churn = pool.submit(() -> {
          int changes = 0;
          while (!stop.get()) {
            server.register("a2", ADAPTERS.get("a2"));
            server.register("a3", ADAPTERS.get("a3"));
            server.unregister("a2");
            server.register("a0", ADAPTERS.get("a0"));
            server.unregister("a3");
            changes += 5;
          }
          return changes;
        });
        List<Future<Double>> workers = new ArrayList<>();
        for (int t = 0; t < 8; t++) {
          long seed = t;
          workers.add(pool.submit(() -> {
            Random r = new Random(seed);
            double worst = 0;
            for (int i = 0; i < 40; i++) {
              List<AdapterServer.Request> qs = new ArrayList<>();
              List<String> names = new ArrayList<>();
              List<Integer> which = new ArrayList<>();
              for (int k = 0; k < 3; k++) {
                String a = r.nextBoolean() ? "a0" : "a1";
                int b = r.nextInt(batches.size());
                qs.add(new AdapterServer.Request(a, batches.get(b)));
                names.add(a);
                which.add(b);
              }
              List<float[][]> out = server.predict(qs);
              for (int k = 0; k < qs.size(); k++) {
                worst = Math.max(worst, worst(expected.get(names.get(k)).get(which.get(k)), out.get(k)));
              }
            }
            return worst;
          }));
        }
        double worst = 0;
        for (Future<Double> w : workers) {
          worst = Math.max(worst, w.get(120, TimeUnit.SECONDS));
        }
        stop.set(true);
        int changes = churn.get(60, TimeUnit.SECONDS);
        assertTrue(changes > 0, "the slot table changed while requests ran");
        assertTrue(worst <= TOLERANCE, "max |difference| under concurrency " + worst);
        System.out.printf("AdapterServerTest 8 threads x 40 mixed batches, %d registrations meanwhile: max |difference| %.3g%n",
            changes, worst);
      } finally {
        stop.set(true);
        pool.shutdownNow();
      }
      assertNotEquals(0, server.capacity());
    }
  }

  @Test
  void theMicroBatcherAnswersEachRequestAndIsolatesABadOne() throws Exception {
    try (AdapterServer server = server()) {
      server.register("a0", ADAPTERS.get("a0"));
      server.register("a1", ADAPTERS.get("a1"));
      Map<String, long[][]> in = inputs(31, 2, 6);
      float[][] e0 = expected("a0", in);
      float[][] e1 = expected("a1", in);
      java.util.concurrent.CompletableFuture<AdapterServer.Prediction> bad;
      List<java.util.concurrent.CompletableFuture<AdapterServer.Prediction>> good = new ArrayList<>();
      try (MicroBatcher batcher = new MicroBatcher(server, java.time.Duration.ofMillis(300), 1000)) {
        // Submitted together within the delay: one batch, in which "nope" fails the whole run at first.
        for (int i = 0; i < 6; i++) {
          good.add(batcher.submit(new AdapterServer.Request(i % 2 == 0 ? "a0" : "a1", in)));
        }
        bad = batcher.submit(new AdapterServer.Request("nope", in));
        double worst = 0;
        for (int i = 0; i < good.size(); i++) {
          worst = Math.max(worst, worst(i % 2 == 0 ? e0 : e1, good.get(i).get(60, TimeUnit.SECONDS).logits()));
        }
        assertTrue(worst <= TOLERANCE, "max |difference| " + worst);
        var failure = assertThrows(java.util.concurrent.ExecutionException.class, () -> bad.get(60, TimeUnit.SECONDS));
        assertEquals(RuntimeErrorCode.ADAPTER_NOT_REGISTERED, ((GraftException) failure.getCause()).getErrorCode());
      }
    }
  }

  @Test
  void aGraftWithoutGatheredGraphCannotBeServed() {
    CompiledGraft plain = Graft.host(host).lora(SITES, l -> l.rank(4)).classification(3).compile();
    AdapterGraphs graphs = Graft.graphs(plain);
    GraftException e = assertThrows(GraftException.class,
        () -> AdapterServer.open(graphs, ModelOptions.defaults().withHost(host)));
    assertTrue(e.getMessage().contains("GraphVariant.GATHERED"), e.getMessage());
  }
}
