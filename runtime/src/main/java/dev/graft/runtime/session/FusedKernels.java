package dev.graft.runtime.session;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.io.IOException;
import java.io.InputStream;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * Graft's native CPU kernels for the fused ops of its training graphs (domain {@code dev.graft}:
 * {@code LayerNorm}, {@code GeluGrad}, {@code SoftmaxGrad}, {@code LayerNormGrad}), a custom-op
 * library for ONNX Runtime built from {@code src/main/c} into this jar for Linux x86-64. A training graph that uses a fused op carries the op's ONNX function too (standard
 * ops), so where the kernels are not registered (CUDA sessions, other platforms, a jar built
 * without a C compiler, {@code ModelOptions.withFusedKernels(false)}) ONNX Runtime runs that body
 * instead: the same values to float32 rounding, only slower. Which of the two a JVM gets is logged
 * once (INFO when the kernels load, WARNING with the reason when they do not).
 *
 * <p>The library is copied from the class path to a temporary file (deleted at exit) and loaded
 * into the JVM once ({@link System#load}), which keeps it loaded for the JVM's life; the runtime
 * then registers it with every CPU session of a graph that uses fused ops ({@link #usedBy}),
 * unless {@code ModelOptions.withFusedKernels(false)}. Before first use, the kernels are checked
 * once against values computed here in float64 (a small graph of the four ops, without their
 * function bodies, so only the kernels can run it); kernels that fail the check are not used, and
 * the warning says why.
 */
public final class FusedKernels {
  /** The domain of the fused ops (the compiler's {@code Graph.GRAFT_DOMAIN}). */
  public static final String DOMAIN = "dev.graft";

  /** The class-path resource of the library for Linux x86-64. */
  public static final String RESOURCE = "native/linux-x86_64/libgraftkernels.so";

  private static final System.Logger LOG = System.getLogger(FusedKernels.class.getName());

  /** The loaded library's file, or the reason there is none. */
  private record Loaded(@Nullable Path file, String reason) {}

  private static final class Holder {
    static final Loaded LOADED = load();
  }

  private FusedKernels() {}

  /** Whether the kernels are loaded in this JVM (and so registered with every CPU session that asks). */
  public static boolean available() {
    return Holder.LOADED.file() != null;
  }

  /** Why the kernels are not available ({@code ""} when they are). */
  public static String unavailableReason() {
    return Holder.LOADED.file() == null ? Holder.LOADED.reason() : "";
  }

  /**
   * Whether {@code model} uses fused ops: a graph that does carries their functions (domain
   * {@value #DOMAIN}). Only such graphs need the kernels, so only their sessions load and register
   * them; an inference graph or an export does not.
   */
  public static boolean usedBy(ModelProto model) {
    return model.getFunctionsList().stream().anyMatch(f -> f.getDomain().equals(DOMAIN));
  }

  /**
   * Registers the kernels with {@code options} when they are available; returns whether it did.
   * A registration ONNX Runtime refuses is an {@link OrtException}, not a silent fallback.
   */
  public static boolean register(OrtSession.SessionOptions options) throws OrtException {
    Path file = Holder.LOADED.file();
    if (file == null) {
      return false;
    }
    options.registerCustomOpLibrary(file.toString());
    return true;
  }

  private static Loaded load() {
    Loaded loaded = tryLoad();
    if (loaded.file() != null) {
      LOG.log(System.Logger.Level.INFO, "Graft's fused CPU kernels loaded from " + loaded.file());
    } else {
      LOG.log(System.Logger.Level.WARNING, "Graft's fused CPU kernels are not available (" + loaded.reason()
          + "); training graphs run the fused ops' standard-op bodies, which are slower");
    }
    return loaded;
  }

  private static Loaded tryLoad() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
    if (!os.startsWith("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
      return new Loaded(null, "they are built for Linux x86-64 only; this is " + os + " " + arch);
    }
    try (InputStream in = FusedKernels.class.getResourceAsStream(RESOURCE)) {
      if (in == null) {
        return new Loaded(null, "this graft-runtime jar holds no " + RESOURCE
            + " (built where no C compiler was on PATH)");
      }
      Path file = Files.createTempFile("graftkernels-", ".so");
      file.toFile().deleteOnExit();
      Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
      System.load(file.toAbsolutePath().toString());
      String failed = selfCheck(file.toAbsolutePath());
      return failed.isEmpty() ? new Loaded(file.toAbsolutePath(), "") : new Loaded(null, failed);
    } catch (IOException | UnsatisfiedLinkError | SecurityException e) {
      return new Loaded(null, "loading " + RESOURCE + " failed: " + e);
    }
  }

  private static final int ROWS = 3;
  private static final int WIDTH = 37;

  /** Runs the four kernels on fixed inputs; {@code ""} when they agree with float64 values, else what differed. */
  private static String selfCheck(Path library) {
    int n = ROWS * WIDTH;
    float[] x = new float[n];
    float[] dy = new float[n];
    float[] y = new float[n];
    float[] scale = new float[WIDTH];
    float[] mean = new float[ROWS];
    float[] inv = new float[ROWS];
    for (int i = 0; i < n; i++) {
      x[i] = (float) (-4 + 8.0 * i / (n - 1));
      dy[i] = (float) Math.sin(0.7 * i);
    }
    for (int r = 0; r < ROWS; r++) {
      double sum = 0;
      double m = 0;
      for (int i = 0; i < WIDTH; i++) {
        sum += Math.exp(Math.cos(0.3 * i + r));
        m += x[r * WIDTH + i];
      }
      m /= WIDTH;
      double v = 0;
      for (int i = 0; i < WIDTH; i++) {
        y[r * WIDTH + i] = (float) (Math.exp(Math.cos(0.3 * i + r)) / sum);
        v += (x[r * WIDTH + i] - m) * (x[r * WIDTH + i] - m);
      }
      mean[r] = (float) m;
      inv[r] = (float) (1 / Math.sqrt(v / WIDTH + 1e-5));
    }
    for (int i = 0; i < WIDTH; i++) {
      scale[i] = (float) (0.5 + 0.03 * i);
    }
    Map<String, float[]> values = Map.of("x", x, "dy", dy, "y", y, "scale", scale, "mean", mean, "inv", inv);
    Map<String, long[]> shapes = Map.of("x", new long[] {ROWS, WIDTH}, "dy", new long[] {ROWS, WIDTH},
        "y", new long[] {ROWS, WIDTH}, "scale", new long[] {WIDTH}, "mean", new long[] {ROWS, 1},
        "inv", new long[] {ROWS, 1});
    GraphProto.Builder g = GraphProto.newBuilder().setName("graftkernels-self-check");
    for (String in : List.of("x", "dy", "y", "scale", "mean", "inv")) {
      g.addInput(floatValue(in));
    }
    g.addNode(NodeProto.newBuilder().setOpType("LayerNorm").setDomain(DOMAIN).addInput("x").addInput("scale")
        .addInput("scale").addOutput("ln_y").addOutput("ln_mean").addOutput("ln_inv")
        .addAttribute(AttributeProto.newBuilder().setName("epsilon").setType(AttributeProto.AttributeType.FLOAT)
            .setF(1e-5f)));
    g.addNode(NodeProto.newBuilder().setOpType("GeluGrad").setDomain(DOMAIN).addInput("dy").addInput("x").addOutput("gelu"));
    g.addNode(NodeProto.newBuilder().setOpType("SoftmaxGrad").setDomain(DOMAIN).addInput("dy").addInput("y")
        .addOutput("softmax"));
    g.addNode(NodeProto.newBuilder().setOpType("LayerNormGrad").setDomain(DOMAIN).addInput("dy").addInput("x")
        .addInput("scale").addInput("mean").addInput("inv").addOutput("layer_norm"));
    for (String out : List.of("ln_y", "ln_mean", "ln_inv", "gelu", "softmax", "layer_norm")) {
      g.addOutput(floatValue(out));
    }
    byte[] model = ModelProto.newBuilder().setIrVersion(8).setGraph(g)
        .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17))
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(DOMAIN).setVersion(1)).build().toByteArray();
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, OnnxTensor> feed = new LinkedHashMap<>();
    try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
      so.registerCustomOpLibrary(library.toString());
      try (OrtSession session = NativeStack.call("opening the fused kernels' self-check", () -> env.createSession(model, so))) {
        for (var e : shapes.entrySet()) {
          feed.put(e.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(values.get(e.getKey())), e.getValue()));
        }
        try (OrtSession.Result r = session.run(feed)) {
          String gelu = differs("GeluGrad", out(r, "gelu"), geluGrad(dy, x), 2e-6);
          String softmax = differs("SoftmaxGrad", out(r, "softmax"), softmaxGrad(dy, y), 1e-5);
          String layerNorm = differs("LayerNormGrad", out(r, "layer_norm"), layerNormGrad(dy, x, scale, mean, inv), 1e-5);
          double[][] forward = layerNorm(x, scale, scale);
          String layerNormForward = differs("LayerNorm", out(r, "ln_y"), forward[0], 1e-5)
              + differs("LayerNorm's mean", out(r, "ln_mean"), forward[1], 1e-5)
              + differs("LayerNorm's inv_std", out(r, "ln_inv"), forward[2], 1e-5);
          return (layerNormForward + gelu + softmax + layerNorm).trim();
        }
      }
    } catch (OrtException | RuntimeException e) {
      return "their self-check failed to run: " + e;
    } finally {
      feed.values().forEach(OnnxTensor::close);
    }
  }

  private static ValueInfoProto floatValue(String name) {
    return ValueInfoProto.newBuilder().setName(name)
        .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(1))).build();
  }

  private static float[] out(OrtSession.Result r, String name) throws OrtException {
    FloatBuffer b = ((OnnxTensor) r.get(name).orElseThrow()).getFloatBuffer();
    float[] v = new float[b.remaining()];
    b.get(v);
    return v;
  }

  /** {@code ""} when |got − want| <= tolerance·max|want| everywhere, else a sentence naming the first miss. */
  private static String differs(String op, float[] got, double[] want, double tolerance) {
    double scale = 0;
    for (double w : want) {
      scale = Math.max(scale, Math.abs(w));
    }
    if (got.length != want.length) {
      return op + " returned " + got.length + " values for " + want.length + ". ";
    }
    for (int i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= tolerance * scale)) {
        return String.format(Locale.ROOT, "%s differs from float64 at %d: %s instead of %s. ", op, i, got[i], want[i]);
      }
    }
    return "";
  }

  /** y, mean and inv_std (epsilon 1e-5) over the rows. */
  private static double[][] layerNorm(float[] x, float[] scale, float[] bias) {
    double[][] out = {new double[x.length], new double[ROWS], new double[ROWS]};
    for (int r = 0; r < ROWS; r++) {
      double m = 0;
      for (int i = 0; i < WIDTH; i++) {
        m += x[r * WIDTH + i];
      }
      m /= WIDTH;
      double v = 0;
      for (int i = 0; i < WIDTH; i++) {
        v += (x[r * WIDTH + i] - m) * (x[r * WIDTH + i] - m);
      }
      double inv = 1 / Math.sqrt(v / WIDTH + 1e-5);
      for (int i = 0; i < WIDTH; i++) {
        out[0][r * WIDTH + i] = (x[r * WIDTH + i] - m) * inv * scale[i] + bias[i];
      }
      out[1][r] = m;
      out[2][r] = inv;
    }
    return out;
  }

  private static double[] geluGrad(float[] dy, float[] x) {
    double[] out = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      double v = x[i];
      out[i] = dy[i] * (0.5 * (1 + erf(v / Math.sqrt(2))) + v * Math.exp(-v * v / 2) / Math.sqrt(2 * Math.PI));
    }
    return out;
  }

  /** erf by its Taylor series: for |t| <= 3 (the self-check's range) accurate to about 1e-12. */
  private static double erf(double t) {
    double term = t;
    double sum = t;
    for (int k = 1; k < 100; k++) {
      term *= -t * t / k;
      sum += term / (2 * k + 1);
    }
    return 2 / Math.sqrt(Math.PI) * sum;
  }

  private static double[] softmaxGrad(float[] dy, float[] y) {
    double[] out = new double[y.length];
    for (int r = 0; r < ROWS; r++) {
      double dot = 0;
      for (int i = 0; i < WIDTH; i++) {
        dot += (double) dy[r * WIDTH + i] * y[r * WIDTH + i];
      }
      for (int i = 0; i < WIDTH; i++) {
        out[r * WIDTH + i] = y[r * WIDTH + i] * (dy[r * WIDTH + i] - dot);
      }
    }
    return out;
  }

  private static double[] layerNormGrad(float[] dy, float[] x, float[] scale, float[] mean, float[] inv) {
    double[] out = new double[x.length];
    for (int r = 0; r < ROWS; r++) {
      double mg = 0;
      double mgc = 0;
      for (int i = 0; i < WIDTH; i++) {
        double gh = (double) dy[r * WIDTH + i] * scale[i];
        mg += gh;
        mgc += gh * (x[r * WIDTH + i] - mean[r]);
      }
      mg /= WIDTH;
      mgc /= WIDTH;
      double k = (double) inv[r] * inv[r] * mgc;
      for (int i = 0; i < WIDTH; i++) {
        out[r * WIDTH + i] = ((double) dy[r * WIDTH + i] * scale[i] - mg - (x[r * WIDTH + i] - mean[r]) * k) * inv[r];
      }
    }
    return out;
  }
}
