package dev.graft.runtime.serve;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.google.protobuf.CodedInputStream;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.io.OnnxAdapterFile;
import dev.graft.runtime.session.ElementType;
import dev.graft.runtime.session.Lifecycle;
import dev.graft.runtime.session.NativeStack;
import dev.graft.runtime.session.Sessions;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.io.IOException;
import java.io.InputStream;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import org.jspecify.annotations.Nullable;

/**
 * Serves an unmerged export (a standalone ONNX model whose adapter weights are graph inputs with
 * defaults) through ONNX Runtime's own LoRA support: each request names the {@code .onnx_adapter}
 * file to apply ({@code OrtLoraAdapter} + {@code RunOptions.addActiveLoraAdapter}), or none for
 * the defaults (the plain host). The session is opened once; an adapter file is read, checked and
 * handed to ONNX Runtime once, on its first use or by {@link #load}, and kept until {@link
 * #unload} or {@link #close}; requests switch adapters freely, concurrently.
 *
 * <p>Measured on ONNX Runtime 1.29 (Java): an adapter may override graph inputs that have an
 * initializer as their default, which Java's {@code run} does not let a caller feed (it hides
 * them from {@code getInputNames} and refuses them); a name that is not a graph input (a plain
 * initializer included), another shape or another element type is refused by ONNX Runtime only
 * when a request runs. So the file is checked here first, against the export's graph inputs read
 * from its ONNX file: every name must be a graph input, each dim must equal the input's where the
 * input's is fixed (symbolic ones, such as the rank, take any size), and the element type must be
 * the input's; float16 and bfloat16 parameters are converted for a float32 input (and float32 to
 * the others), with a note in {@link Adapter#notes()}. The bytes handed to ONNX Runtime are
 * those {@link OnnxAdapterFile} read and checked (or their conversion), never a second read.
 *
 * <p>Thread-safe: requests run concurrently; {@link #unload} and {@link #close} wait for the
 * requests in flight.
 */
public final class OrtAdapterSession implements AutoCloseable {
  /** ONNX files larger than this cannot be parsed (protobuf's limit); weights belong in external data. */
  static final long MAX_MODEL_BYTES = Integer.MAX_VALUE;

  /**
   * An adapter file as the session holds it.
   *
   * @param file the file (absolute, normalized)
   * @param parameters the graph inputs it feeds, sorted
   * @param notes what was converted (e.g. a float16 parameter fed to a float32 input)
   */
  public record Adapter(Path file, Set<String> parameters, List<String> notes) {
    public Adapter {
      parameters = Collections.unmodifiableSet(new TreeSet<>(parameters));
      notes = List.copyOf(notes);
    }
  }

  /**
   * One output of a request.
   *
   * @param shape its dims
   * @param values its float32 values, row-major
   */
  public record Output(long[] shape, float[] values) {
    public Output {
      shape = shape.clone();
    }

    @Override
    public long[] shape() {
      return shape.clone();
    }

    /** The values as rows of a 2-D output {@code [batch, n]}. */
    public float[][] rows() {
      if (shape.length != 2) {
        throw new TensorMismatchException("(output)", "a 2-D output", Arrays.toString(shape));
      }
      float[][] out = new float[(int) shape[0]][(int) shape[1]];
      for (int r = 0; r < out.length; r++) {
        System.arraycopy(values, r * out[r].length, out[r], 0, out[r].length);
      }
      return out;
    }
  }

  /** A graph input: element type and dims (-1 where symbolic or unknown). */
  private record Input(int elemType, long[] dims, boolean hasDefault) {}

  private record Held(Adapter adapter, OrtLoraAdapter handle) {}

  private final String source;
  private final OrtEnvironment env;
  private final OrtSession session;
  private final Map<String, Input> graphInputs;
  private final Map<String, NodeInfo> fedInputs;
  private final String firstOutput;
  private final Map<Path, Held> adapters = new ConcurrentHashMap<>();
  private final Lifecycle lifecycle = new Lifecycle("the adapter session");

  private OrtAdapterSession(Path export, ModelOptions options) {
    this.source = export.toString();
    this.graphInputs = graphInputs(export);
    this.env = OrtEnvironment.getEnvironment();
    try (OrtSession.SessionOptions so = Sessions.sessionOptions(options, export.getFileName().toString(), false)) {
      this.session = NativeStack.call("opening " + export, () -> env.createSession(export.toString(), so));
    } catch (OrtException e) {
      throw Sessions.failure("cannot open " + export, e);
    }
    try {
      this.fedInputs = session.getInputInfo();
      this.firstOutput = session.getOutputNames().iterator().next();
    } catch (OrtException | RuntimeException e) {
      closeQuietly();
      throw e instanceof OrtException o ? Sessions.failure("cannot read the inputs of " + export, o) : (RuntimeException) e;
    }
  }

  /** Opens an unmerged export on the CPU. */
  public static OrtAdapterSession open(Path export) {
    return open(export, ModelOptions.defaults());
  }

  /** Opens an unmerged export with {@code options}' device and intra-op threads (the other options do not apply). */
  public static OrtAdapterSession open(Path export, ModelOptions options) {
    return new OrtAdapterSession(export, options);
  }

  /** The graph inputs an adapter may feed (those with a default), sorted. */
  public Set<String> adapterInputs() {
    Set<String> out = new TreeSet<>();
    graphInputs.forEach((name, in) -> {
      if (in.hasDefault()) {
        out.add(name);
      }
    });
    return out;
  }

  /**
   * Reads, checks and hands {@code file} to ONNX Runtime, unless it is held already; a file that
   * fails its checks is not held.
   */
  public Adapter load(Path file) {
    return lifecycle.read(() -> held(file).adapter());
  }

  /** Releases a held adapter file (a later request with it reads it again); false when it was not held. */
  public boolean unload(Path file) {
    return lifecycle.write(() -> {
      Held h = adapters.remove(key(file));
      if (h == null) {
        return false;
      }
      h.handle().close();
      return true;
    });
  }

  /** The adapter files held, sorted. */
  public Set<Path> loaded() {
    return new TreeSet<>(adapters.keySet());
  }

  /** Runs a request with adapter file {@code adapter} (null: none, the defaults) and returns the first output. */
  public Output run(@Nullable Path adapter, Map<String, long[][]> inputs) {
    return run(adapter, inputs, firstOutput);
  }

  /** Runs a request with adapter file {@code adapter} (null: none, the defaults) and returns output {@code output}. */
  public Output run(@Nullable Path adapter, Map<String, long[][]> inputs, String output) {
    return lifecycle.read(() -> runRequest(adapter, inputs, output));
  }

  private Output runRequest(@Nullable Path adapter, Map<String, long[][]> inputs, String output) {
    Held held = adapter == null ? null : held(adapter);
    if (held != null) {
      for (String name : inputs.keySet()) {
        if (held.adapter().parameters().contains(name)) {
          throw new GraftException(RuntimeErrorCode.ARGUMENT,
              "input '" + name + "' is fed by the request and by adapter " + held.adapter().file() + "; feed it once");
        }
      }
    }
    Map<String, OnnxTensor> tensors = new LinkedHashMap<>();
    try (OrtSession.RunOptions ro = new OrtSession.RunOptions()) {
      for (Map.Entry<String, long[][]> e : new TreeMap<>(inputs).entrySet()) {
        tensors.put(e.getKey(), tensor(e.getKey(), e.getValue()));
      }
      Set<String> missing = new TreeSet<>(fedInputs.keySet());
      missing.removeAll(tensors.keySet());
      if (!missing.isEmpty()) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT,
            source + " needs inputs " + missing + "; given " + new TreeSet<>(inputs.keySet()));
      }
      if (held != null) {
        ro.addActiveLoraAdapter(held.handle());
      }
      try (OrtSession.Result r = session.run(tensors, Set.of(output), ro)) {
        OnnxValue v = r.get(output).orElseThrow();
        if (!(v instanceof OnnxTensor t) || t.getInfo().type != OnnxJavaType.FLOAT) {
          throw new TensorMismatchException(output, "a float32 tensor", v.getInfo().toString(), source);
        }
        FloatBuffer fb = t.getFloatBuffer();
        float[] values = new float[fb.remaining()];
        fb.get(values);
        return new Output(t.getInfo().getShape(), values);
      }
    } catch (OrtException e) {
      throw Sessions.failure("the request on " + source
          + (held == null ? " without an adapter" : " with adapter " + held.adapter().file()) + " failed", e);
    } finally {
      tensors.values().forEach(OnnxTensor::close);
    }
  }

  private OnnxTensor tensor(String name, long[][] values) throws OrtException {
    NodeInfo info = fedInputs.get(name);
    if (info == null) {
      throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME,
          source + " has no input '" + name + "' to feed; its inputs are " + new TreeSet<>(fedInputs.keySet()));
    }
    int cols = values.length == 0 ? 0 : values[0].length;
    for (long[] row : values) {
      if (row.length != cols) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "input '" + name + "' has rows of different lengths");
      }
    }
    OnnxJavaType type = info.getInfo() instanceof TensorInfo ti ? ti.type : OnnxJavaType.UNKNOWN;
    long[] shape = {values.length, cols};
    if (type == OnnxJavaType.INT64) {
      long[] flat = new long[values.length * cols];
      for (int r = 0; r < values.length; r++) {
        System.arraycopy(values[r], 0, flat, r * cols, cols);
      }
      return OnnxTensor.createTensor(env, java.nio.LongBuffer.wrap(flat), shape);
    }
    if (type == OnnxJavaType.INT32) {
      int[] flat = new int[values.length * cols];
      for (int r = 0; r < values.length; r++) {
        for (int c = 0; c < cols; c++) {
          flat[r * cols + c] = Math.toIntExact(values[r][c]);
        }
      }
      return OnnxTensor.createTensor(env, java.nio.IntBuffer.wrap(flat), shape);
    }
    throw new TensorMismatchException(name, "an int64 or int32 input", String.valueOf(info.getInfo()), source);
  }

  private Held held(Path file) {
    Path key = key(file);
    Held h = adapters.get(key);
    if (h != null) {
      return h;
    }
    Held made = make(key);
    Held raced = adapters.putIfAbsent(key, made);
    if (raced != null) {
      made.handle().close();
      return raced;
    }
    return made;
  }

  private static Path key(Path file) {
    return file.toAbsolutePath().normalize();
  }

  /** Reads and checks an adapter file against the graph inputs, converting element types where needed. */
  private Held make(Path file) {
    byte[] bytes = OnnxAdapterFile.readBytes(file);
    OnnxAdapterFile.Contents contents = OnnxAdapterFile.parse(file.toString(), bytes);
    List<OnnxAdapterFile.Parameter> converted = new ArrayList<>();
    List<String> notes = new ArrayList<>();
    Set<String> names = new TreeSet<>();
    for (OnnxAdapterFile.Parameter p : contents.parameters()) {
      Input in = graphInputs.get(p.name());
      if (in == null) {
        throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, file + ": parameter '" + p.name()
            + "' is not an input of " + source + "; its adapter inputs are " + adapterInputs());
      }
      long[] dims = p.dims();
      boolean fits = dims.length == in.dims().length;
      for (int i = 0; fits && i < dims.length; i++) {
        fits = in.dims()[i] < 0 || in.dims()[i] == dims[i];
      }
      OnnxAdapterFile.DataType want = OnnxAdapterFile.DataType.of(in.elemType());
      if (!fits || want == null) {
        throw new TensorMismatchException(p.name(), ElementType.describe(in.elemType()) + Arrays.toString(in.dims())
            + " (-1: any size)", p.type() + Arrays.toString(dims), file + " against " + source);
      }
      if (want != p.type()) {
        notes.add("parameter '" + p.name() + "' is " + p.type() + " in the file, converted to " + want
            + " for the graph input");
        converted.add(OnnxAdapterFile.Parameter.of(p.name(), want, dims, p.toFloats()));
      } else {
        converted.add(p);
      }
      names.add(p.name());
    }
    byte[] handed = notes.isEmpty()
        ? bytes
        : OnnxAdapterFile.toBytes(new OnnxAdapterFile.Contents(contents.adapterVersion(), contents.modelVersion(), converted));
    try {
      return new Held(new Adapter(file, names, notes), OrtLoraAdapter.create(handed));
    } catch (OrtException e) {
      throw Sessions.failure("ONNX Runtime cannot load adapter " + file, e);
    }
  }

  /** The graph inputs of an ONNX file: element type, dims, and whether an initializer is their default. */
  private static Map<String, Input> graphInputs(Path export) {
    String src = export.toString();
    ModelProto model;
    try {
      if (Files.size(export) > MAX_MODEL_BYTES) {
        throw new FormatException(src, "is larger than " + MAX_MODEL_BYTES + " bytes; keep the weights in external data");
      }
      try (InputStream in = Files.newInputStream(export)) {
        CodedInputStream coded = CodedInputStream.newInstance(in);
        coded.setSizeLimit(Integer.MAX_VALUE);
        model = ModelProto.parseFrom(coded);
      }
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      throw new FormatException(src, "not an ONNX model: " + e.getMessage(), e);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read " + src + ": " + e, e);
    }
    GraphProto g = model.getGraph();
    Set<String> initializers = new TreeSet<>();
    for (TensorProto t : g.getInitializerList()) {
      initializers.add(t.getName());
    }
    Map<String, Input> out = new HashMap<>();
    for (ValueInfoProto v : g.getInputList()) {
      TensorShapeProto shape = v.getType().getTensorType().getShape();
      long[] dims = new long[shape.getDimCount()];
      for (int i = 0; i < dims.length; i++) {
        TensorShapeProto.Dimension d = shape.getDim(i);
        dims[i] = d.hasDimValue() ? d.getDimValue() : -1;
      }
      out.put(v.getName(), new Input(v.getType().getTensorType().getElemType(), dims, initializers.contains(v.getName())));
    }
    return Collections.unmodifiableMap(out);
  }

  /** Waits for the requests in flight, then releases the adapters and the session; closing again does nothing. */
  @Override
  public void close() {
    lifecycle.close(this::closeQuietly);
  }

  private void closeQuietly() {
    adapters.values().forEach(h -> h.handle().close());
    adapters.clear();
    try {
      session.close();
    } catch (OrtException e) {
      throw Sessions.failure("cannot close the session on " + source, e);
    }
  }
}
