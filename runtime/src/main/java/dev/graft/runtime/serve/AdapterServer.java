package dev.graft.runtime.serve;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.feed.HostInputs;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.session.DirectBuffers;
import dev.graft.runtime.session.Lifecycle;
import dev.graft.runtime.session.Sessions;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.spec.manifest.GatheredGraph;
import dev.graft.spec.manifest.GatheredRole;
import dev.graft.spec.manifest.GatheredTensor;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * Serves many adapters of one graft on one host at once, through the graft's gathered graph
 * ({@code <name>.gathered.onnx}): each registered adapter holds a slot of the stacked factors and
 * heads, slot 0 being "no adapter" (zeros: the host itself, and a zero head); a {@link #predict}
 * batch mixes rows of any adapters, each row computed with its own adapter in one run. An
 * adapter's factors come from its parameters through the graft's update graph ({@code
 * <name>.update.onnx}): every linear-site kind, the LoRA family at its rank, the others as a dense
 * pair; each site's factors are zero-padded to the largest rank registered there (exact).
 *
 * <p>Thread-safe: predictions run concurrently with each other; {@link #register} and {@link
 * #unregister} wait for the runs in flight and change the slot table alone (growing the stacks,
 * or their rank, when a new adapter needs it), so a run never sees half an adapter. Unregistering
 * zeroes the slot and frees it for the next adapter.
 */
public final class AdapterServer implements AutoCloseable {
  /** One request: an adapter (null: the host without adapter) and its host inputs {@code [rows, sequence]}. */
  public record Request(@Nullable String adapter, Map<String, long[][]> inputs) {
    public Request {
      inputs = Map.copyOf(inputs);
    }
  }

  /** What a request's rows produced: the task's output {@code [rows][outputs]} and the host output, flattened per row. */
  public record Prediction(float[][] logits, float[][] hostOutput) {}

  private final Manifest manifest;
  private final int maxAdapters;
  private final GatheredGraph gathered;
  private final OrtEnvironment env = OrtEnvironment.getEnvironment();
  private final Sessions.Extra sessions;
  /** The update graph's session; null when the graft has no linear site (a head alone). */
  private final @Nullable OrtSession update;
  private final OrtSession session;
  private final Lifecycle lifecycle = new Lifecycle("the adapter server");
  private final Map<String, Parameter> parameters = new LinkedHashMap<>();
  private final @Nullable String mask;
  /** Slot per registered adapter; slot 0 is "no adapter". */
  private final Map<String, Integer> slots = new TreeMap<>();
  /** Each registered adapter's tensors by stacked input, unpadded (a factor at its own rank). */
  private final Map<String, Map<String, float[]>> values = new HashMap<>();
  /** The rank each site's factors are stacked at: the largest of the adapters registered since opening. */
  private final Map<String, Integer> ranks = new TreeMap<>();
  private String[] slotNames = new String[0];
  private final Map<String, FloatBuffer> buffers = new LinkedHashMap<>();
  private final Map<String, OnnxTensor> stacks = new LinkedHashMap<>();

  private AdapterServer(AdapterGraphs graphs, ModelOptions options, int maxAdapters) {
    if (maxAdapters < 1) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "maxAdapters must be at least 1, got " + maxAdapters);
    }
    this.maxAdapters = maxAdapters;
    this.manifest = graphs.manifest();
    if (!manifest.hasGathered() || graphs.gatheredGraph() == null) {
      throw new GraftException(RuntimeErrorCode.IO, "graft '" + graphs.name() + "' has no gathered graph ("
          + graphs.name() + AdapterGraphs.GATHERED_SUFFIX + "); compile it with GraphVariant.GATHERED to serve it");
    }
    this.gathered = manifest.getGathered();
    manifest.getParametersList().forEach(p -> parameters.put(p.getName(), p));
    this.mask = manifest.getInputsList().stream().filter(HostInput::getMask).map(HostInput::getName).findFirst()
        .orElse(null);
    for (GatheredTensor t : gathered.getTensorsList()) {
      if (t.getRole() == GatheredRole.HEAD && !parameters.containsKey(t.getSource())) {
        throw new FormatException(graphs.name() + AdapterGraphs.MANIFEST_SUFFIX,
            "gathered input '" + t.getName() + "' stacks '" + t.getSource() + "', which is no parameter of the graft");
      }
      if (t.getRole() != GatheredRole.HEAD) {
        ranks.put(t.getSite(), 1);
      }
    }
    boolean factors = !ranks.isEmpty();
    if (factors && (manifest.getUpdateGraph().isEmpty() || graphs.updateGraph() == null)) {
      throw new GraftException(RuntimeErrorCode.IO, "graft '" + graphs.name() + "' has no update graph ("
          + graphs.name() + AdapterGraphs.UPDATE_SUFFIX + "), which computes each adapter's factors; recompile it");
    }
    this.sessions = factors
        ? Sessions.openGraphs(graphs, options, List.of(gathered.getGraph(), manifest.getUpdateGraph()),
            List.of(graphs.gatheredGraph(), graphs.updateGraph()))
        : Sessions.openGraphs(graphs, options, List.of(gathered.getGraph()), List.of(graphs.gatheredGraph()));
    this.session = sessions.sessions().get(0);
    this.update = factors ? sessions.sessions().get(1) : null;
    try {
      checkInputs();
      resize(1, Map.of());
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  /** How many adapters a server holds at most unless told otherwise. */
  public static final int DEFAULT_MAX_ADAPTERS = 1024;

  /** Opens the server on the gathered graph of {@code graphs} with no adapter registered, for up to {@link #DEFAULT_MAX_ADAPTERS}. */
  public static AdapterServer open(AdapterGraphs graphs, ModelOptions options) {
    return open(graphs, options, DEFAULT_MAX_ADAPTERS);
  }

  /** Opens the server for at most {@code maxAdapters} registered adapters (registering one more is refused). */
  public static AdapterServer open(AdapterGraphs graphs, ModelOptions options, int maxAdapters) {
    return new AdapterServer(graphs, options, maxAdapters);
  }

  private void checkInputs() {
    Set<String> expected = new TreeSet<>();
    manifest.getInputsList().forEach(i -> expected.add(i.getName()));
    expected.add(gathered.getAdapterIndex());
    gathered.getTensorsList().forEach(t -> expected.add(t.getName()));
    Set<String> actual = new TreeSet<>(session.getInputNames());
    Set<String> outputs = session.getOutputNames();
    if (!expected.equals(actual) || !outputs.contains(gathered.getLogits()) || !outputs.contains(gathered.getHostOutput())) {
      throw new FormatException(gathered.getGraph(), "graph and manifest disagree: the manifest names inputs " + expected
          + " and outputs " + List.of(gathered.getLogits(), gathered.getHostOutput()) + ", the graph has inputs " + actual
          + " and outputs " + outputs);
    }
    Set<String> factors = new TreeSet<>();
    gathered.getTensorsList().stream().filter(t -> t.getRole() != GatheredRole.HEAD).forEach(t -> factors.add(t.getSource()));
    if (update == null) {
      return;
    }
    if (!update.getOutputNames().containsAll(factors) || !update.getInputNames().equals(parameters.keySet().stream()
        .collect(java.util.stream.Collectors.toCollection(TreeSet::new)))) {
      throw new FormatException(manifest.getUpdateGraph(), "graph and manifest disagree: the gathered graph stacks "
          + factors + " of the parameters " + new TreeSet<>(parameters.keySet()) + ", the update graph has inputs "
          + new TreeSet<>(update.getInputNames()) + " and outputs " + new TreeSet<>(update.getOutputNames()));
    }
  }

  // ---------------------------------------------------------------- the slot table

  /**
   * Registers (or replaces) adapter {@code name} from a PEFT adapter folder saved for this graft
   * ({@code AdapterModel.saveAdapter}), checked as {@code AdapterModel.loadAdapter} checks it.
   */
  public void register(String name, Path adapterFolder) {
    MapStore store = new MapStore();
    PeftAdapters.load(store, adapterFolder);
    register(name, store.values);
  }

  /**
   * Registers (or replaces) adapter {@code name} from its parameter values by manifest name (as
   * {@code AdapterModel.getParameterValues()} gives them); every parameter the gathered graph reads
   * must be there with its manifest length, and no unknown name.
   */
  public void register(String name, Map<String, float[]> parameterValues) {
    if (name.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "an adapter name must not be empty");
    }
    for (Map.Entry<String, float[]> e : parameterValues.entrySet()) {
      Parameter p = parameters.get(e.getKey());
      if (p == null) {
        throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "adapter '" + name + "': no parameter '" + e.getKey()
            + "' in graft " + manifest.getName() + "; its parameters are " + parameters.keySet());
      }
      if (e.getValue().length != size(p.getShapeList())) {
        throw new TensorMismatchException(e.getKey(), p.getShapeList() + " (" + size(p.getShapeList()) + " values)",
            e.getValue().length + " values", "adapter '" + name + "'");
      }
    }
    for (String p : parameters.keySet()) {
      if (!parameterValues.containsKey(p)) {
        throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "adapter '" + name + "' lacks parameter '" + p
            + "'; every parameter of graft " + manifest.getName() + " is needed: " + parameters.keySet());
      }
    }
    Map<String, float[]> adapter = new LinkedHashMap<>();
    Map<String, Integer> adapterRanks = new HashMap<>();
    // Under the read lock: the update session stays open while it runs, alongside predictions.
    Map<String, float[]> factors = lifecycle.read(() -> factors(name, parameterValues));
    for (GatheredTensor t : gathered.getTensorsList()) {
      float[] v = t.getRole() == GatheredRole.HEAD ? parameterValues.get(t.getSource()).clone() : factors.get(t.getSource());
      adapter.put(t.getName(), v);
      if (t.getRole() == GatheredRole.FACTOR_A || t.getRole() == GatheredRole.FACTOR_B) {
        int r = (int) (v.length / t.getShape(t.getRole() == GatheredRole.FACTOR_A ? 0 : 1));
        adapterRanks.merge(t.getSite(), r, Math::max);
      }
    }
    lifecycle.write(() -> {
      Integer slot = slots.get(name);
      if (slot == null && slots.size() >= maxAdapters) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "cannot register adapter '" + name + "': the server holds "
            + maxAdapters + " adapters, its limit; unregister one first");
      }
      if (slot == null) {
        slot = freeSlot();
      }
      values.put(name, adapter);
      slots.put(name, slot);
      int capacity = slotNames.length;
      while (capacity <= slot) {
        capacity *= 2;
      }
      boolean wider = adapterRanks.entrySet().stream().anyMatch(e -> e.getValue() > ranks.get(e.getKey()));
      if (capacity != slotNames.length || wider) {
        resize(capacity, adapterRanks);
      } else {
        slotNames[slot] = name;
        write(slot, adapter);
      }
    });
  }

  /**
   * Runs the update graph on one adapter's parameters: each linear site's factors (A {@code [in,
   * r]}, B {@code [r, out]}) and bias change, by update graph output; every value finite.
   */
  private Map<String, float[]> factors(String name, Map<String, float[]> parameterValues) {
    Map<String, OnnxTensor> inputs = new HashMap<>();
    Set<String> wanted = new TreeSet<>();
    gathered.getTensorsList().stream().filter(t -> t.getRole() != GatheredRole.HEAD).forEach(t -> wanted.add(t.getSource()));
    if (update == null) {
      return Map.of();
    }
    try {
      for (Parameter p : parameters.values()) {
        long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
        inputs.put(p.getName(), OnnxTensor.createTensor(env, FloatBuffer.wrap(parameterValues.get(p.getName())), shape));
      }
      Map<String, float[]> out = new HashMap<>();
      try (OrtSession.Result r = update.run(inputs, wanted)) {
        for (String w : wanted) {
          FloatBuffer fb = ((OnnxTensor) r.get(w).orElseThrow()).getFloatBuffer();
          float[] v = new float[fb.remaining()];
          fb.get(v);
          for (float x : v) {
            if (!Float.isFinite(x)) {
              throw new GraftException(RuntimeErrorCode.ARGUMENT,
                  "adapter '" + name + "': its update " + w + " is not finite; its parameters hold NaN or infinite values");
            }
          }
          out.put(w, v);
        }
      }
      return out;
    } catch (OrtException e) {
      throw Sessions.failure("cannot compute the factors of adapter '" + name + "'", e);
    } finally {
      inputs.values().forEach(OnnxTensor::close);
    }
  }

  /** Unregisters adapter {@code name}: its slot is zeroed and free for the next adapter. */
  public void unregister(String name) {
    lifecycle.write(() -> {
      Integer slot = slots.remove(name);
      if (slot == null) {
        throw notRegistered(name);
      }
      values.remove(name);
      slotNames[slot] = null;
      for (GatheredTensor t : gathered.getTensorsList()) {
        FloatBuffer b = buffers.get(t.getName());
        int per = b.capacity() / slotNames.length;
        for (int i = slot * per; i < (slot + 1) * per; i++) {
          b.put(i, 0f);
        }
      }
    });
  }

  /** The registered adapters, sorted. */
  public List<String> adapters() {
    return lifecycle.read(() -> List.copyOf(slots.keySet()));
  }

  /** The slot of each registered adapter (1 and up; slot 0 is "no adapter"). */
  public Map<String, Integer> slots() {
    return lifecycle.read(() -> Map.copyOf(slots));
  }

  /** The number of slots the stacks hold now, slot 0 included. */
  public int capacity() {
    return lifecycle.read(() -> slotNames.length);
  }

  /** The rank each site's factors are stacked at now, by site: the largest of any adapter registered since opening. */
  public Map<String, Integer> ranks() {
    return lifecycle.read(() -> Map.copyOf(ranks));
  }

  private int freeSlot() {
    for (int i = 1; i < slotNames.length; i++) {
      if (slotNames[i] == null) {
        return i;
      }
    }
    return Math.max(1, slotNames.length);
  }

  /**
   * Rebuilds every stack at {@code capacity} slots, each site's rank widened to {@code wider}'s
   * where that is larger, writing every registered adapter.
   */
  private void resize(int capacity, Map<String, Integer> wider) {
    stacks.values().forEach(OnnxTensor::close);
    stacks.clear();
    buffers.clear();
    wider.forEach((site, r) -> ranks.merge(site, r, Math::max));
    slotNames = new String[capacity];
    try {
      for (GatheredTensor t : gathered.getTensorsList()) {
        long[] shape = stackShape(t, capacity);
        FloatBuffer b = DirectBuffers.floats(Math.toIntExact(size(Arrays.stream(shape).boxed().toList())));
        buffers.put(t.getName(), b);
        stacks.put(t.getName(), OnnxTensor.createTensor(env, b, shape));
      }
    } catch (OrtException e) {
      throw Sessions.failure("cannot create the stacked adapter tensors", e);
    }
    for (Map.Entry<String, Integer> e : slots.entrySet()) {
      slotNames[e.getValue()] = e.getKey();
      write(e.getValue(), values.get(e.getKey()));
    }
  }

  /** Writes one adapter's tensors into slot {@code slot}, each factor zero-padded to the stacks' rank. */
  private void write(int slot, Map<String, float[]> adapter) {
    for (GatheredTensor t : gathered.getTensorsList()) {
      FloatBuffer b = buffers.get(t.getName());
      float[] v = adapter.get(t.getName());
      int per = b.capacity() / slotNames.length;
      int base = slot * per;
      for (int i = 0; i < per; i++) {
        b.put(base + i, 0f);
      }
      if (t.getRole() == GatheredRole.FACTOR_A) {
        int in = (int) t.getShape(0);
        int r = v.length / in;
        int rank = ranks.get(t.getSite());
        for (int i = 0; i < in; i++) {
          for (int j = 0; j < r; j++) {
            b.put(base + i * rank + j, v[i * r + j]);
          }
        }
      } else {
        // B [r, out] is its first r rows of [rank, out]; a bias change or a head is its own shape.
        for (int i = 0; i < v.length; i++) {
          b.put(base + i, v[i]);
        }
      }
    }
  }

  private long[] stackShape(GatheredTensor t, int capacity) {
    long[] shape = new long[t.getShapeCount() + 1];
    shape[0] = capacity;
    for (int i = 0; i < t.getShapeCount(); i++) {
      shape[i + 1] = t.getShape(i) == 0 ? ranks.get(t.getSite()) : t.getShape(i);
    }
    return shape;
  }

  // ---------------------------------------------------------------- prediction

  /** The task's output for one adapter's rows (null: the host without adapter). */
  public float[][] predict(@Nullable String adapter, Map<String, long[][]> inputs) {
    return run(List.of(new Request(adapter, inputs))).get(0).logits();
  }

  /**
   * Runs every request's rows in one batch, each row with its request's adapter; requests of
   * different lengths are padded (host inputs with 0) when the graft has an attention mask.
   *
   * @return each request's logits, in order
   */
  public List<float[][]> predict(List<Request> requests) {
    return run(requests).stream().map(Prediction::logits).toList();
  }

  /** As {@link #predict(List)}, with each row's host output (the value the task reads, adapted). */
  public List<Prediction> run(List<Request> requests) {
    if (requests.isEmpty()) {
      return List.of();
    }
    return lifecycle.read(() -> runLocked(requests));
  }

  /** The request's inputs in the manifest's order (inputs the manifest lacks after, by name). */
  private Map<String, long[][]> inManifestOrder(Request q) {
    Map<String, long[][]> ordered = new LinkedHashMap<>();
    for (HostInput in : manifest.getInputsList()) {
      if (q.inputs().containsKey(in.getName())) {
        ordered.put(in.getName(), q.inputs().get(in.getName()));
      }
    }
    new TreeMap<>(q.inputs()).forEach(ordered::putIfAbsent);
    return ordered;
  }

  private long[][] firstInput(Request q) {
    return inManifestOrder(q).values().iterator().next();
  }

  private List<Prediction> runLocked(List<Request> requests) {
    int rows = 0;
    int sequence = 0;
    for (Request q : requests) {
      if (q.adapter() != null && !slots.containsKey(q.adapter())) {
        throw notRegistered(q.adapter());
      }
      long[][] first = q.inputs().isEmpty() ? new long[0][] : firstInput(q);
      if (first.length == 0) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "a request has no rows");
      }
      rows += first.length;
      for (long[][] v : q.inputs().values()) {
        for (long[] row : v) {
          sequence = Math.max(sequence, row.length);
        }
      }
    }
    Map<String, long[][]> batch = new LinkedHashMap<>();
    long[] index = new long[rows];
    for (HostInput in : manifest.getInputsList()) {
      batch.put(in.getName(), new long[rows][]);
    }
    int at = 0;
    for (Request q : requests) {
      if (!q.inputs().keySet().equals(batch.keySet())) {
        // HostInputs names what is missing or unknown.
        HostInputs.tensors(env, manifest, q.inputs()).values().forEach(OnnxTensor::close);
      }
      long[][] reference = firstInput(q);
      int n = reference.length;
      // In the manifest's order, so that a mismatch names the same input on every run.
      for (Map.Entry<String, long[][]> e : inManifestOrder(q).entrySet()) {
        long[][] v = e.getValue();
        if (v.length != n) {
          throw new TensorMismatchException(e.getKey(), n + " rows (as the request's other inputs)", v.length + " rows");
        }
        for (int r = 0; r < n; r++) {
          if (v[r].length != reference[r].length) {
            throw new TensorMismatchException(e.getKey(), "row " + r + " of " + reference[r].length
                + " values (as the request's other inputs)", v[r].length + " values");
          }
          if (v[r].length != sequence && mask == null) {
            throw new GraftException(RuntimeErrorCode.ARGUMENT, "requests of different lengths (" + v[r].length + " and "
                + sequence + ") cannot share a batch: graft " + manifest.getName() + " has no attention mask to pad with");
          }
          batch.get(e.getKey())[at + r] = Arrays.copyOf(v[r], sequence);
        }
      }
      Arrays.fill(index, at, at + n, q.adapter() == null ? 0 : slots.get(q.adapter()));
      at += n;
    }
    Map<String, OnnxTensor> owned = HostInputs.tensors(env, manifest, batch);
    try {
      owned.put(gathered.getAdapterIndex(), OnnxTensor.createTensor(env, DirectBuffers.longs(rows).put(index).rewind(),
          new long[] {rows}));
      Map<String, OnnxTensorLike> inputs = new HashMap<>(owned);
      inputs.putAll(stacks);
      try (OrtSession.Result r = session.run(inputs, Set.of(gathered.getLogits(), gathered.getHostOutput()))) {
        float[][] logits = perRow((OnnxTensor) r.get(gathered.getLogits()).orElseThrow(), rows);
        float[][] host = perRow((OnnxTensor) r.get(gathered.getHostOutput()).orElseThrow(), rows);
        List<Prediction> out = new ArrayList<>();
        int from = 0;
        for (Request q : requests) {
          int n = q.inputs().values().iterator().next().length;
          out.add(new Prediction(Arrays.copyOfRange(logits, from, from + n), Arrays.copyOfRange(host, from, from + n)));
          from += n;
        }
        return out;
      }
    } catch (OrtException e) {
      throw Sessions.failure("gathered inference failed", e);
    } finally {
      owned.values().forEach(OnnxTensor::close);
    }
  }

  private static float[][] perRow(OnnxTensor t, int rows) {
    long[] shape = t.getInfo().getShape();
    if (shape.length == 0 || shape[0] != rows) {
      throw new TensorMismatchException(t.getInfo().toString(), "[" + rows + ", ...]", Arrays.toString(shape), "graph output");
    }
    FloatBuffer fb = t.getFloatBuffer();
    int per = fb.remaining() / rows;
    float[][] out = new float[rows][per];
    for (float[] row : out) {
      fb.get(row);
    }
    return out;
  }

  private GraftException notRegistered(String name) {
    return new GraftException(RuntimeErrorCode.ADAPTER_NOT_REGISTERED,
        "adapter '" + name + "' is not registered; registered: " + slots.keySet());
  }

  private static long size(List<Long> shape) {
    long n = 1;
    for (long d : shape) {
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  /** Waits for the calls in flight, then releases the session, host weights and stacks; closing again does nothing. */
  @Override
  public void close() {
    lifecycle.close(() -> {
      stacks.values().forEach(OnnxTensor::close);
      stacks.clear();
      sessions.close();
    });
  }

  /** Parameter values read from an adapter folder. */
  private final class MapStore implements ParameterStore {
    final Map<String, float[]> values = new LinkedHashMap<>();

    @Override
    public Manifest getManifest() {
      return manifest;
    }

    @Override
    public float[] getParameter(String name) {
      float[] v = values.get(name);
      if (v == null) {
        throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "no parameter '" + name + "' read");
      }
      return v.clone();
    }

    @Override
    public void setParameter(String name, float[] v) {
      values.put(name, v.clone());
    }
  }
}
