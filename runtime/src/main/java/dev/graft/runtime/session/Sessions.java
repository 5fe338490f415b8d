package dev.graft.runtime.session;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import ai.onnxruntime.ValueInfo;
import com.google.protobuf.CodedInputStream;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.ExecutionProviderException;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.KeyValueCache;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.TrainStep;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * The ONNX Runtime side of an adapter model: the host's frozen weights, read once and fed to
 * both sessions as external initializers, the inference session and (unless disabled) the
 * training-step session, each checked against the manifest when opened.
 */
public final class Sessions implements AutoCloseable {
  private final HostWeights host;
  private final OrtSession inference;
  private final @Nullable OrtSession training;
  private final @Nullable ElementType labelType;
  private final @Nullable ElementType seedType;

  private Sessions(HostWeights host, OrtSession inference, @Nullable OrtSession training,
      @Nullable ElementType labelType, @Nullable ElementType seedType) {
    this.host = host;
    this.inference = inference;
    this.training = training;
    this.labelType = labelType;
    this.seedType = seedType;
  }

  /**
   * Reads the host weights and opens the sessions of {@code graphs} (the training session when
   * {@code train}); every graph input and output is checked against the manifest.
   */
  public static Sessions open(AdapterGraphs graphs, ModelOptions options, boolean train) {
    Manifest manifest = graphs.manifest();
    String inferName = graphs.name() + AdapterGraphs.INFER_SUFFIX;
    String trainName = graphs.name() + AdapterGraphs.TRAIN_SUFFIX;
    ModelProto inferProto = parseGraph(inferName, graphs.inferenceGraph());
    ModelProto trainProto = train ? parseGraph(trainName, graphs.trainGraph()) : null;
    HostWeights host = openHost(graphs, options);
    OrtSession inf = null;
    OrtSession trn = null;
    try {
      inf = openSession(inferName, graphs.inferenceGraph(), inferProto, options, host, false);
      if (train) {
        trn = openSession(trainName, graphs.trainGraph(), trainProto, options, host, true);
      }
      checkSession(manifest, inferName, inf, false);
      ElementType labels = null;
      ElementType seed = null;
      if (trn != null) {
        checkSession(manifest, trainName, trn, true);
        labels = inputType(trn, manifest.getTrain().getLabels());
        seed = manifest.getTrain().getSeed().isEmpty() ? null : inputType(trn, manifest.getTrain().getSeed());
      }
      return new Sessions(host, inf, trn, labels, seed);
    } catch (OrtException e) {
      closeQuietly(inf, trn, host);
      throw failure("cannot open the adapter's sessions", e);
    } catch (RuntimeException e) {
      closeQuietly(inf, trn, host);
      throw e;
    }
  }

  /** Sessions of further graphs of a graft (the update and the gathered graphs) on one copy of the host weights; closed together. */
  public record Extra(HostWeights host, List<OrtSession> sessions) implements AutoCloseable {
    @Override
    public void close() {
      sessions.forEach(s -> closeQuietly(s));
      closeQuietly(host);
    }
  }

  /**
   * Reads the host weights of {@code graphs} (checked as {@link #open} checks them) and opens each
   * graph of {@code bytes}, named by {@code sources} in errors, on them; their inputs and outputs
   * are the caller's to check.
   */
  public static Extra openGraphs(AdapterGraphs graphs, ModelOptions options, List<String> sources, List<byte[]> bytes) {
    List<ModelProto> protos = new ArrayList<>();
    for (int i = 0; i < bytes.size(); i++) {
      protos.add(parseGraph(sources.get(i), bytes.get(i)));
    }
    HostWeights host = openHost(graphs, options);
    List<OrtSession> opened = new ArrayList<>();
    try {
      for (int i = 0; i < bytes.size(); i++) {
        opened.add(openSession(sources.get(i), bytes.get(i), protos.get(i), options, host, false));
      }
      return new Extra(host, List.copyOf(opened));
    } catch (OrtException e) {
      opened.forEach(s -> closeQuietly(s));
      closeQuietly(host);
      throw failure("cannot open " + sources, e);
    } catch (RuntimeException e) {
      opened.forEach(s -> closeQuietly(s));
      closeQuietly(host);
      throw e;
    }
  }

  /** The host's frozen weights. */
  public HostWeights host() {
    return host;
  }

  public OrtSession inference() {
    return inference;
  }

  /** The training-step session, or {@code null} for a model opened for inference only. */
  public @Nullable OrtSession training() {
    return training;
  }

  /** The element type of the training step's labels input ({@code null} without a training session). */
  public @Nullable ElementType labelType() {
    return labelType;
  }

  /** The element type of the training step's dropout seed input ({@code null} when it has none). */
  public @Nullable ElementType seedType() {
    return seedType;
  }

  /** An ONNX Runtime failure as a {@link GraftException} ({@code GRAFT-R001}) with {@code e} as its cause. */
  public static GraftException failure(String what, OrtException e) {
    return new GraftException(RuntimeErrorCode.ONNX_RUNTIME, what + ": " + e.getCode() + ": " + e.getMessage(), e);
  }

  private static ModelProto parseGraph(String source, byte[] bytes) {
    try {
      CodedInputStream in = CodedInputStream.newInstance(bytes);
      in.setSizeLimit(Integer.MAX_VALUE);
      return ModelProto.parseFrom(in);
    } catch (IOException e) {
      throw new FormatException(source, "not an ONNX model: " + e.getMessage(), e);
    }
  }

  /**
   * The host weights the graphs read, from {@code options.host()} or the manifest's host; the
   * host's SHA-256 (hashed as the weights are read) must be the manifest's {@code host_sha256},
   * where it records one, unless {@link ModelOptions#hostChangeAllowed()}.
   */
  private static HostWeights openHost(AdapterGraphs graphs, ModelOptions options) {
    HostWeights host = readHost(graphs, options);
    String expected = graphs.manifest().getHostSha256();
    if (!options.hostChangeAllowed() && !expected.isEmpty() && !host.sha256().isEmpty()
        && !expected.equalsIgnoreCase(host.sha256())) {
      host.close();
      throw new GraftException(
          RuntimeErrorCode.HOST_CHANGED,
          "host model " + host.source() + " has SHA-256 " + host.sha256() + ", but " + graphs.manifest().getName()
              + " was compiled against a host with SHA-256 " + expected
              + "; recompile against this host, or open with ModelOptions.withHostChangeAllowed() if it was changed on purpose");
    }
    return host;
  }

  private static HostWeights readHost(AdapterGraphs graphs, ModelOptions options) {
    Manifest manifest = graphs.manifest();
    List<String> names = manifest.getHostInitializersList();
    if (names.isEmpty()) {
      return HostWeights.none();
    }
    Path file = options.host();
    if (file != null) {
      return HostWeights.read(file, names);
    }
    String host = manifest.getHost();
    if (host.isEmpty()) {
      throw new FormatException(manifest.getName(), "the manifest names no host; give it with ModelOptions.withHost");
    }
    if (graphs.classLoader().getResource(host) != null) {
      return HostWeights.readResource(graphs.classLoader(), host, names);
    }
    Path p = Path.of(host);
    if (Files.isRegularFile(p)) {
      return HostWeights.read(p, names);
    }
    throw new GraftException(
        RuntimeErrorCode.IO,
        "host model '" + host + "' is neither a classpath resource nor a file; add the jar that holds it,"
            + " or give the host file with ModelOptions.withHost(Path)");
  }

  private static OrtSession openSession(
      String source, byte[] bytes, ModelProto proto, ModelOptions options, HostWeights host, boolean training)
      throws OrtException {
    List<String> external = new ArrayList<>();
    for (TensorProto init : proto.getGraph().getInitializerList()) {
      if (init.getDataLocation() != TensorProto.DataLocation.EXTERNAL) {
        continue;
      }
      HostWeights.Weight w = host.weights().get(init.getName());
      if (w == null) {
        throw new FormatException(
            source,
            "initializer '" + init.getName() + "' is external data but not in the manifest's host_initializers");
      }
      long[] dims = init.getDimsList().stream().mapToLong(Long::longValue).toArray();
      if (!Arrays.equals(dims, w.dims()) || init.getDataType() != w.dataType()) {
        throw new TensorMismatchException(
            init.getName(),
            ElementType.describe(init.getDataType()) + Arrays.toString(dims) + " (declared by " + source + ")",
            ElementType.describe(w.dataType()) + Arrays.toString(w.dims()) + " (in host " + host.source() + ")",
            "the host differs from the one the adapter was compiled against");
      }
      external.add(init.getName());
    }
    try (OrtSession.SessionOptions so = sessionOptions(options, source, training)) {
      // Graft's fused CPU kernels, for a graph that uses fused ops (the training graphs).
      if (options.device() == Device.CPU && options.fusedKernels() && FusedKernels.usedBy(proto)) {
        FusedKernels.register(so);
      }
      if (!external.isEmpty()) {
        so.addExternalInitializers(host.subset(external));
      }
      return NativeStack.call("opening " + source, () -> OrtEnvironment.getEnvironment().createSession(bytes, so));
    }
  }

  /**
   * Session options for {@code options}' intra-op threads, device, profiling and optimized-model
   * dump (files named after {@code graphName}, its {@code .onnx} suffix dropped); CUDA where the
   * ONNX Runtime on the class path cannot use it is an {@link ExecutionProviderException}, and where
   * it has the CUDA provider but that does not load (CUDA or cuDNN libraries missing) a {@code
   * GRAFT-R370} naming them ({@link CudaLibraries}). A
   * training step's session ({@code training}) runs without ONNX Runtime's memory patterns: they
   * pre-plan one arena block per shape seen, which for a graph that holds its activations until
   * the backward pass raises the peak by about a third and saves no time. The caller closes them.
   */
  public static OrtSession.SessionOptions sessionOptions(ModelOptions options, String graphName, boolean training)
      throws OrtException {
    OrtSession.SessionOptions so = new OrtSession.SessionOptions();
    try {
      if (options.intraOpThreads() > 0) {
        so.setIntraOpNumThreads(options.intraOpThreads());
      }
      if (training) {
        so.setMemoryPatternOptimization(false);
      }
      String stem = graphName.endsWith(".onnx") ? graphName.substring(0, graphName.length() - 5) : graphName;
      stem = Path.of(stem).getFileName().toString();
      Path profiles = options.profileDirectory();
      if (profiles != null) {
        so.enableProfiling(directory(profiles, "profile").resolve(stem).toString());
      }
      Path dumps = options.optimizedModelDirectory();
      if (dumps != null) {
        so.setOptimizedModelFilePath(directory(dumps, "optimized-model").resolve(stem + ".optimized.onnx").toString());
      }
      if (options.device() == Device.CUDA) {
        try {
          so.addCUDA(options.cudaDeviceId());
        } catch (OrtException e) {
          if (OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
            throw new GraftException(RuntimeErrorCode.CUDA_LIBRARIES, CudaLibraries.message(String.valueOf(e.getMessage())), e);
          }
          throw new ExecutionProviderException(
              "CUDA was asked for but the ONNX Runtime on the classpath cannot use it (" + e.getCode() + ": "
                  + e.getMessage() + "). Depend on com.microsoft.onnxruntime:onnxruntime_gpu (CUDA 12, cuDNN 9)"
                  + " instead of com.microsoft.onnxruntime:onnxruntime, or use Device.CPU",
              e);
        }
      }
      return so;
    } catch (OrtException | RuntimeException e) {
      so.close();
      throw e;
    }
  }

  private static Path directory(Path dir, String what) {
    if (!Files.isDirectory(dir)) {
      throw new GraftException(RuntimeErrorCode.IO, "the " + what + " directory " + dir
          + " is not an existing directory; create it first");
    }
    return dir;
  }

  /** Checks the session's inputs and outputs against the manifest, names and (for state) types and shapes. */
  private static void checkSession(Manifest manifest, String source, OrtSession session, boolean train) {
    Set<String> expectedIn = new TreeSet<>();
    Set<String> expectedOut = new TreeSet<>();
    for (HostInput in : manifest.getInputsList()) {
      expectedIn.add(in.getName());
    }
    // A decoder's key/value cache: both graphs take the past, the inference graph returns the present.
    for (KeyValueCache c : manifest.getKeyValuesList()) {
      expectedIn.add(c.getPastInput());
      if (!train) {
        expectedOut.add(c.getPresentOutput());
      }
    }
    TrainStep ts = manifest.getTrain();
    for (Parameter p : manifest.getParametersList()) {
      expectedIn.add(p.getName());
      if (train) {
        expectedIn.add(p.getName() + ts.getFirstMomentSuffix());
        expectedIn.add(p.getName() + ts.getSecondMomentSuffix());
        expectedOut.add(p.getName() + ts.getUpdatedSuffix());
        expectedOut.add(p.getName() + ts.getFirstMomentSuffix() + ts.getUpdatedSuffix());
        expectedOut.add(p.getName() + ts.getSecondMomentSuffix() + ts.getUpdatedSuffix());
        // A fed update mask (sparse fine-tuning); one the graph computes itself (MoSA) is no input.
        if (!p.getUpdateMask().isEmpty() && session.getInputNames().contains(p.getUpdateMask())) {
          expectedIn.add(p.getUpdateMask());
        }
      }
    }
    // Named adapters and composition: every gate is an input of both graphs.
    manifest.getAdaptersList().stream().filter(a -> !a.getGate().isEmpty()).forEach(a -> expectedIn.add(a.getGate()));
    if (train) {
      expectedIn.add(ts.getLabels());
      expectedIn.add(ts.getStep());
      expectedIn.add(ts.getLearningRate());
      if (!ts.getSeed().isEmpty()) {
        expectedIn.add(ts.getSeed());
      }
      expectedOut.add(ts.getLoss());
    } else {
      expectedOut.add(manifest.getLogits());
      if (!manifest.getTask().getEmbeddingOutput().isEmpty()) {
        expectedOut.add(manifest.getTask().getEmbeddingOutput());
      }
    }
    Set<String> missing = new TreeSet<>(expectedIn);
    missing.removeAll(session.getInputNames());
    Set<String> extra = new TreeSet<>(session.getInputNames());
    extra.removeAll(expectedIn);
    Set<String> missingOut = new TreeSet<>(expectedOut);
    missingOut.removeAll(session.getOutputNames());
    if (!missing.isEmpty() || !extra.isEmpty() || !missingOut.isEmpty()) {
      throw new FormatException(
          source,
          "graph and manifest disagree: inputs the manifest names but the graph lacks " + missing
              + ", graph inputs the manifest does not name " + extra + ", outputs missing " + missingOut);
    }
    for (Parameter p : manifest.getParametersList()) {
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      checkInput(session, source, p.getName(), ElementType.FLOAT, shape);
      if (train) {
        checkInput(session, source, p.getName() + ts.getFirstMomentSuffix(), ElementType.FLOAT, shape);
        checkInput(session, source, p.getName() + ts.getSecondMomentSuffix(), ElementType.FLOAT, shape);
      }
    }
    if (train) {
      checkInput(session, source, ts.getStep(), ElementType.FLOAT, new long[0]);
      checkInput(session, source, ts.getLearningRate(), ElementType.FLOAT, new long[0]);
    }
  }

  private static void checkInput(OrtSession session, String source, String name, ElementType type, long[] shape) {
    TensorInfo info = tensorInfo(session, name);
    if (info.type != type.javaType || !Arrays.equals(info.getShape(), shape)) {
      throw new TensorMismatchException(
          name,
          type.name().toLowerCase(Locale.ROOT) + Arrays.toString(shape) + " (manifest)",
          info.type.name().toLowerCase(Locale.ROOT) + Arrays.toString(info.getShape()) + " (" + source + ")");
    }
  }

  private static TensorInfo tensorInfo(OrtSession session, String name) {
    try {
      NodeInfo node = session.getInputInfo().get(name);
      ValueInfo info = node == null ? null : node.getInfo();
      if (!(info instanceof TensorInfo t)) {
        throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "graph input '" + name + "' is not a tensor");
      }
      return t;
    } catch (OrtException e) {
      throw failure("cannot read the inputs of a session", e);
    }
  }

  private static ElementType inputType(OrtSession session, String name) {
    OnnxJavaType t = tensorInfo(session, name).type;
    for (ElementType e : ElementType.values()) {
      if (e.javaType == t) {
        return e;
      }
    }
    throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "graph input '" + name + "' has unsupported type " + t);
  }

  private static void closeQuietly(@Nullable AutoCloseable... things) {
    for (AutoCloseable c : things) {
      try {
        if (c != null) {
          c.close();
        }
      } catch (Exception ignored) {
        // closing after a failure: the first failure is the one to report
      }
    }
  }

  @Override
  public void close() {
    closeQuietly(training, inference, host);
  }
}
