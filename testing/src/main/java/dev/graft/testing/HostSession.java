package dev.graft.testing;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.ByteBuffer;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One ONNX Runtime session over a compiled graph, fed the host's weights as the external
 * initializers it declares; runs on feeds by name and returns outputs as doubles.
 */
final class HostSession implements AutoCloseable {
  static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private final OrtSession session;
  private final List<OnnxTensor> weights = new ArrayList<>();
  private final Map<String, NodeInfo> inputs;

  /** Without {@code optimize}, no graph optimizations: two graphs doing the same arithmetic give the same bits. */
  HostSession(ModelProto model, Graph host, boolean optimize) throws OrtException {
    Map<String, OnnxTensorLike> external = new HashMap<>();
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
      if (!optimize) {
        options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      }
      for (TensorProto t : model.getGraph().getInitializerList()) {
        TensorProto weight = host.initializers().get(t.getName());
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL && weight != null) {
          OnnxTensor tensor = tensor(weight);
          weights.add(tensor);
          external.put(t.getName(), tensor);
        }
      }
      options.addExternalInitializers(external);
      session = ENV.createSession(model.toByteArray(), options);
      inputs = session.getInputInfo();
    } catch (OrtException | RuntimeException e) {
      weights.forEach(OnnxTensor::close);
      throw e;
    }
  }

  /** A host initializer as a tensor of its own type. */
  private static OnnxTensor tensor(TensorProto t) throws OrtException {
    long[] shape = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    return switch (t.getDataType()) {
      case TensorType.BOOL -> OnnxTensor.createTensor(ENV, ByteBuffer.wrap(t.getRawData().toByteArray()), shape, OnnxJavaType.BOOL);
      // An int8 host's weights and zero points (raw data, as the int8 hosts store them).
      case TensorType.INT8 -> OnnxTensor.createTensor(ENV, ByteBuffer.wrap(t.getRawData().toByteArray()), shape, OnnxJavaType.INT8);
      case TensorType.UINT8 -> OnnxTensor.createTensor(ENV, ByteBuffer.wrap(t.getRawData().toByteArray()), shape, OnnxJavaType.UINT8);
      case TensorType.INT64 ->
          OnnxTensor.createTensor(ENV, LongBuffer.wrap(Tensors.readLongs(t).stream().mapToLong(Long::longValue).toArray()), shape);
      case TensorType.DOUBLE -> OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(Tensors.readDoubles(t)), shape);
      default -> OnnxTensor.createTensor(ENV, FloatBuffer.wrap(Feed.toFloats(Tensors.readDoubles(t))), shape);
    };
  }

  Set<String> inputNames() {
    return inputs.keySet();
  }

  Set<String> outputNames() throws OrtException {
    return session.getOutputNames();
  }

  /** The element type an input declares (FLOAT, DOUBLE, INT64, BOOL …). */
  OnnxJavaType inputType(String name) {
    NodeInfo info = inputs.get(name);
    return info != null && info.getInfo() instanceof TensorInfo t ? t.type : OnnxJavaType.UNKNOWN;
  }

  /** Runs on those of {@code feeds} the graph takes; returns {@code outputs} (all of them when empty), in order. */
  Map<String, double[]> run(Map<String, Feed> feeds, Set<String> outputs) throws OrtException {
    Map<String, OnnxTensor> in = new HashMap<>();
    try {
      for (Map.Entry<String, Feed> e : feeds.entrySet()) {
        if (inputs.containsKey(e.getKey())) {
          in.put(e.getKey(), e.getValue().tensor(ENV, inputType(e.getKey())));
        }
      }
      try (OrtSession.Result r = outputs.isEmpty() ? session.run(in) : session.run(in, outputs)) {
        Map<String, double[]> out = new LinkedHashMap<>();
        for (Map.Entry<String, ai.onnxruntime.OnnxValue> e : r) {
          out.put(e.getKey(), doubles((OnnxTensor) e.getValue()));
        }
        if (!outputs.isEmpty()) {
          Map<String, double[]> ordered = new LinkedHashMap<>();
          outputs.forEach(o -> ordered.put(o, out.get(o)));
          return ordered;
        }
        return out;
      }
    } finally {
      in.values().forEach(OnnxTensor::close);
    }
  }

  private static double[] doubles(OnnxTensor t) {
    OnnxJavaType type = t.getInfo().type;
    if (type == OnnxJavaType.DOUBLE) {
      DoubleBuffer b = t.getDoubleBuffer();
      double[] d = new double[b.remaining()];
      b.get(d);
      return d;
    }
    if (type == OnnxJavaType.BOOL) {
      ByteBuffer b = t.getByteBuffer();
      double[] d = new double[b.remaining()];
      for (int i = 0; i < d.length; i++) {
        d[i] = b.get(i) != 0 ? 1 : 0;
      }
      return d;
    }
    if (type == OnnxJavaType.INT64) {
      LongBuffer b = t.getLongBuffer();
      double[] d = new double[b.remaining()];
      for (int i = 0; i < d.length; i++) {
        d[i] = b.get(i);
      }
      return d;
    }
    FloatBuffer b = t.getFloatBuffer();
    double[] d = new double[b.remaining()];
    for (int i = 0; i < d.length; i++) {
      d[i] = b.get(i);
    }
    return d;
  }

  @Override
  public void close() throws OrtException {
    session.close();
    weights.forEach(OnnxTensor::close);
  }
}
