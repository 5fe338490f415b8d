package dev.graft.compiler.autodiff;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.DoubleSupplier;
import java.util.function.Function;

/**
 * Finite-difference gradient check through ONNX Runtime.
 *
 * <p>The body builds {@code y} from the declared inputs; the harness adds {@code loss =
 * ReduceSum(y * R)} with a fixed random {@code R} (so every element of {@code y} matters),
 * runs {@link Autodiff#differentiate} for the differentiated inputs, and compares every
 * analytic gradient element with the central difference {@code (loss(x+h) - loss(x-h)) / 2h},
 * the loss evaluated by running the forward graph (exported before differentiation) in ORT.
 *
 * <p>When {@code y} has symbolic dims, {@code R} is a graph input typed like {@code y} (fed with
 * {@code y}'s run-time shape); dims that shape inference cannot name at all are first removed
 * by reshaping {@code y} to its run-time shape. Each gradient's inferred type must match its
 * parameter's (dims may be unknown), and its run-time shape must equal the parameter's.
 *
 * <p>Defaults: float64, {@code h = 1e-6}, pass when {@code |analytic - numeric| <= 1e-6 +
 * 1e-5·|numeric|}. Tests of float32-only kernels set their own step and tolerance.
 */
final class GradCheck {
  static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private record Input(String name, int elemType, long[] shape, double[] values, long[] longs, boolean diff) {}

  private final int elemType;
  private final Random random;
  private final Map<String, Input> inputs = new LinkedHashMap<>();
  private double h = 1e-6;
  private double absTol = 1e-6;
  private double relTol = 1e-5;
  private boolean retypeGradients;
  private final Map<String, List<Dim>> declared = new HashMap<>();

  private GradCheck(int elemType, long seed) {
    this.elemType = elemType;
    this.random = new Random(seed);
  }

  /** A float64 check (the default tolerances). */
  static GradCheck float64(long seed) {
    return new GradCheck(TensorType.DOUBLE, seed);
  }

  /** A float32 check; set {@link #step} and {@link #tolerance} for it. */
  static GradCheck float32(long seed) {
    return new GradCheck(TensorType.FLOAT, seed);
  }

  int elemType() {
    return elemType;
  }

  Random random() {
    return random;
  }

  GradCheck step(double step) {
    this.h = step;
    return this;
  }

  /**
   * Test-side workaround: gives gradient outputs whose type shape inference left unknown the
   * type of their parameter before export, so the math of a rule can be checked even while its
   * output type is not inferred (see the test that checks that type).
   */
  GradCheck retypeUntypedGradients() {
    this.retypeGradients = true;
    return this;
  }

  GradCheck tolerance(double abs, double rel) {
    this.absTol = abs;
    this.relTol = rel;
    return this;
  }

  /** A differentiated floating input, uniform in [lo, hi). */
  GradCheck param(String name, long[] shape, double lo, double hi) {
    return add(name, elemType, shape, uniform(shape, lo, hi), true);
  }

  /** A differentiated floating input with magnitudes in [lo, hi) and random sign (away from 0). */
  GradCheck paramAwayFromZero(String name, long[] shape, double lo, double hi) {
    double[] v = uniform(shape, lo, hi);
    for (int i = 0; i < v.length; i++) {
      v[i] = random.nextBoolean() ? v[i] : -v[i];
    }
    return add(name, elemType, shape, v, true);
  }

  /** A differentiated input with the given values. */
  GradCheck param(String name, int type, long[] shape, double[] values) {
    return add(name, type, shape, values, true);
  }

  /** A floating input that is not differentiated, uniform in [lo, hi). */
  GradCheck frozen(String name, long[] shape, double lo, double hi) {
    return add(name, elemType, shape, uniform(shape, lo, hi), false);
  }

  /**
   * Declares input {@code name} to the graph with these dims (e.g. symbolic ones) instead of its
   * concrete shape; the concrete values are still what is fed.
   */
  GradCheck declare(String name, Dim... dims) {
    assertEquals(inputs.get(name).shape().length, dims.length, name);
    declared.put(name, List.of(dims));
    return this;
  }

  /** An int64 input. */
  GradCheck int64(String name, long[] shape, long[] values) {
    inputs.put(name, new Input(name, TensorType.INT64, shape, null, values, false));
    return this;
  }

  private GradCheck add(String name, int type, long[] shape, double[] values, boolean diff) {
    assertEquals(count(shape), values.length, name);
    inputs.put(name, new Input(name, type, shape, values, null, diff));
    return this;
  }

  double[] uniform(long[] shape, double lo, double hi) {
    return fill((int) count(shape), () -> lo + (hi - lo) * random.nextDouble());
  }

  static double[] fill(int n, DoubleSupplier s) {
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] = s.getAsDouble();
    }
    return v;
  }

  static long count(long[] shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  /** The graphs built for one check. */
  record Built(Graph graph, byte[] forward, byte[] backward, String y, String loss, Map<String, String> grads,
      double[] r) {}

  /** Builds the forward graph (with loss) and the differentiated graph without running them. */
  Built build(String op, Function<Graph, String> body) {
    Graph g = new Graph();
    for (Input in : inputs.values()) {
      List<Dim> dims = new ArrayList<>();
      for (long d : in.shape()) {
        dims.add(Dim.of(d));
      }
      g.addInput(in.name(), TensorType.of(in.elemType(), declared.getOrDefault(in.name(), dims)));
    }
    String y = body.apply(g);
    ShapeInference.run(g);
    assertTrue(g.nodes().stream().anyMatch(n -> n.opType().equals(op)), "the body uses " + op);
    TensorType ty = g.typeOrThrow(y);
    assertTrue(ty.isFloating(), "y is floating: " + ty);
    assertTrue(ty.hasRank(), "rank of y inferred: " + ty);
    boolean fixed = ty.dims().stream().allMatch(Dim::isKnown);
    long[] yShape = fixed ? ty.dims().stream().mapToLong(Dim::size).toArray() : concreteShape(g, y);
    if (ty.dims().stream().anyMatch(d -> !d.isKnown() && !d.isSymbol())) {
      // Dims shape inference could not name: y·R would be an elementwise op between two
      // values with unknown dims, which Grad.unbroadcast refuses. Reshape y to its run-time
      // shape first (Reshape's gradient reshapes back to Shape(y)).
      List<Long> concrete = new ArrayList<>();
      for (long d : yShape) {
        concrete.add(d);
      }
      y = g.op("/check/Reshape", "Reshape", List.of(y, g.longs("/check/shape", concrete)));
      ShapeInference.run(g);
      ty = g.typeOrThrow(y);
      fixed = true;
    }
    double[] r = uniform(yShape, -1, 1);
    List<Long> rDims = new ArrayList<>();
    for (long d : yShape) {
      rDims.add(d);
    }
    String rName;
    if (fixed) {
      rName = g.constant("R", Tensors.floats("R", ty.elemType(), rDims, r));
    } else {
      // y has symbolic dims: R becomes an input typed like y, fed with y's run-time shape.
      rName = "R";
      g.addInput(rName, ty);
      inputs.put(rName, new Input(rName, ty.elemType(), yShape, r, null, false));
    }
    String weighted = g.op("/check/Mul", "Mul", List.of(y, rName));
    String loss = g.op("/check/ReduceSum", "ReduceSum", List.of(weighted), Node.attr("keepdims", 0L));
    ShapeInference.run(g);
    assertEquals(List.of(), g.typeOrThrow(loss).dims(), "loss is a scalar");
    g.outputs().add(loss);
    byte[] forward = OnnxExport.write(g, "forward").toByteArray();
    List<String> params = inputs.values().stream().filter(Input::diff).map(Input::name).toList();
    Map<String, String> grads = Autodiff.differentiate(g, loss, params);
    g.outputs().addAll(grads.values());
    for (String p : params) {
      TensorType want = g.typeOrThrow(p);
      TensorType got = g.type(grads.get(p));
      boolean untyped = got == null || got.elemType() == 0;
      if (!(untyped && retypeGradients)) {
        assertTrue(got != null && compatible(want, got),
            op + ": inferred type of the gradient of " + p + " is " + got + ", parameter is " + want);
      }
    }
    if (retypeGradients) {
      grads.forEach((p, grad) -> {
        TensorType t = g.type(grad);
        if (t == null || t.elemType() == 0) {
          g.types().put(grad, g.typeOrThrow(p));
        }
      });
    }
    byte[] backward = OnnxExport.write(g, "backward").toByteArray();
    return new Built(g, forward, backward, y, loss, grads, r);
  }

  private long[] concreteShape(Graph g, String y) {
    g.outputs().add(y);
    byte[] model = OnnxExport.write(g, "shape").toByteArray();
    g.outputs().remove(y);
    try (OrtSession s = session(model)) {
      Map<String, OnnxTensor> f = feeds(Map.of());
      try (OrtSession.Result r = s.run(f)) {
        return ((OnnxTensor) r.get(0)).getInfo().getShape();
      } finally {
        f.values().forEach(OnnxTensor::close);
      }
    } catch (OrtException e) {
      throw new AssertionError("ORT failed computing the shape of y: " + e.getMessage(), e);
    }
  }

  /** Same element type and rank, and each dim equal to the parameter's or unknown. */
  static boolean compatible(TensorType param, TensorType grad) {
    if (param.elemType() != grad.elemType() || !grad.hasRank() || grad.rank() != param.rank()) {
      return false;
    }
    for (int i = 0; i < param.rank(); i++) {
      Dim d = grad.dim(i);
      if (!(d.equals(param.dim(i)) || (!d.isKnown() && !d.isSymbol()))) {
        return false;
      }
    }
    return true;
  }

  /** Builds, runs and compares; returns the analytic gradients by parameter. */
  Map<String, double[]> check(String op, Function<Graph, String> body) {
    Built b = build(op, body);
    Map<String, double[]> analytic = new LinkedHashMap<>();
    try (OrtSession fwd = session(b.forward()); OrtSession bwd = session(b.backward())) {
      Map<String, long[]> shapes = new HashMap<>();
      Map<String, double[]> out = run(bwd, feeds(Map.of()), new ArrayList<>(b.grads().values()), shapes);
      double base = run(fwd, feeds(Map.of()), List.of(b.loss())).get(b.loss())[0];
      assertTrue(Double.isFinite(base), "loss finite");
      StringBuilder failures = new StringBuilder();
      int checked = 0;
      for (Input in : inputs.values()) {
        if (!in.diff()) {
          continue;
        }
        double[] grad = out.get(b.grads().get(in.name()));
        assertEquals(java.util.Arrays.toString(in.shape()), java.util.Arrays.toString(shapes.get(b.grads().get(in.name()))),
            op + ": run-time shape of the gradient of " + in.name());
        analytic.put(in.name(), grad);
        for (int i = 0; i < grad.length; i++) {
          double numeric = (lossAt(fwd, b.loss(), in, i, h) - lossAt(fwd, b.loss(), in, i, -h)) / (2 * h);
          double err = Math.abs(grad[i] - numeric);
          checked++;
          if (!(err <= absTol + relTol * Math.abs(numeric))) {
            failures.append(String.format("%n  d loss/d %s[%d]: analytic %.9g, numeric %.9g", in.name(), i, grad[i], numeric));
          }
        }
      }
      assertTrue(checked > 0, "something was checked");
      if (failures.length() > 0) {
        fail(op + ": gradient differs from central differences (h=" + h + ", tol " + absTol + " + " + relTol
            + "·|numeric|):" + failures);
      }
    } catch (OrtException e) {
      throw new AssertionError(op + ": ORT failed: " + e.getMessage(), e);
    }
    return analytic;
  }

  private double lossAt(OrtSession fwd, String loss, Input in, int i, double delta) throws OrtException {
    double[] v = in.values().clone();
    v[i] += delta;
    return run(fwd, feeds(Map.of(in.name(), v)), List.of(loss)).get(loss)[0];
  }

  static OrtSession session(byte[] model) throws OrtException {
    return ENV.createSession(model, new OrtSession.SessionOptions());
  }

  /** The inputs as ORT tensors, with {@code override} values replacing some. */
  Map<String, OnnxTensor> feeds(Map<String, double[]> override) throws OrtException {
    Map<String, OnnxTensor> m = new HashMap<>();
    for (Input in : inputs.values()) {
      if (in.longs() != null) {
        m.put(in.name(), OnnxTensor.createTensor(ENV, LongBuffer.wrap(in.longs()), in.shape()));
      } else {
        m.put(in.name(), tensor(in.elemType(), override.getOrDefault(in.name(), in.values()), in.shape()));
      }
    }
    return m;
  }

  static OnnxTensor tensor(int elemType, double[] v, long[] shape) throws OrtException {
    if (elemType == TensorType.DOUBLE) {
      return OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(v), shape);
    }
    float[] f = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      f[i] = (float) v[i];
    }
    return OnnxTensor.createTensor(ENV, FloatBuffer.wrap(f), shape);
  }

  /** Runs and returns the named outputs as doubles; closes the feeds. */
  static Map<String, double[]> run(OrtSession s, Map<String, OnnxTensor> feeds, List<String> outputs)
      throws OrtException {
    return run(s, feeds, outputs, new HashMap<>());
  }

  /** Like {@link #run(OrtSession, Map, List)}, also recording each output's run-time shape. */
  static Map<String, double[]> run(OrtSession s, Map<String, OnnxTensor> feeds, List<String> outputs,
      Map<String, long[]> shapes) throws OrtException {
    try (OrtSession.Result r = s.run(feeds, new java.util.LinkedHashSet<>(outputs))) {
      Map<String, double[]> out = new LinkedHashMap<>();
      for (String o : outputs) {
        OnnxValue v = r.get(o).orElseThrow();
        out.put(o, doubles(v));
        shapes.put(o, ((OnnxTensor) v).getInfo().getShape());
      }
      return out;
    } finally {
      feeds.values().forEach(OnnxTensor::close);
    }
  }

  static double[] doubles(OnnxValue v) {
    OnnxTensor t = (OnnxTensor) v;
    OnnxJavaType type = t.getInfo().type;
    switch (type) {
      case DOUBLE -> {
        DoubleBuffer b = t.getDoubleBuffer();
        double[] d = new double[b.remaining()];
        b.get(d);
        return d;
      }
      case FLOAT -> {
        FloatBuffer b = t.getFloatBuffer();
        double[] d = new double[b.remaining()];
        for (int i = 0; i < d.length; i++) {
          d[i] = b.get(i);
        }
        return d;
      }
      case BOOL -> {
        java.nio.ByteBuffer b = t.getByteBuffer();
        double[] d = new double[b.remaining()];
        for (int i = 0; i < d.length; i++) {
          d[i] = b.get(i) != 0 ? 1 : 0;
        }
        return d;
      }
      default -> throw new AssertionError("unexpected output type " + type);
    }
  }
}
