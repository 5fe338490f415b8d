package dev.graft.compiler.ir;

import com.google.protobuf.ByteString;
import dev.graft.compiler.HostModel;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * Makes an int8 twin of a float host: every linear layer {@code y = MatMul(x, W)} whose weight is
 * a float32 {@code [in, out]} initializer of its own becomes the pattern ONNX Runtime's dynamic
 * quantization writes ({@link QuantizedMatMul}), so the layer trains as an int8 site (see {@code
 * docs/int8-hosts.md}):
 *
 * <pre>
 *   (xq, xs, xzp) = DynamicQuantizeLinear(x)            one per x, shared by the layers that read it
 *   y = Mul(Cast(MatMulInteger(xq, Wq, xzp), FLOAT), Mul(xs, ws))
 * </pre>
 *
 * with {@code ws[o] = max_i |W[i, o]| / 127} (1 for an all-zero column) and {@code Wq[i, o] =
 * round(W[i, o] / ws[o])}: symmetric per output column, no weight zero point, so every element of
 * {@code Wq·ws} is within {@code ws[o]/2} of {@code W}. The {@code MatMulInteger} node is named
 * after the float one with {@code _quant} appended (the langchain4j {@code -q} hosts' naming, which
 * the default LoRA targets match), and {@code y} keeps its name.
 *
 * <p>Left float, each with the reason in {@link Result#skipped}: a weight that other nodes read too
 * (tied weights), held as external data, not float32 or not 2-D, holding fewer or more values than
 * its shape says, or with a NaN or infinite value;
 * {@code Gemm} layers and products of two activations (attention) are not linear layers here.
 */
public final class Int8Quantizer {
  private Int8Quantizer() {}

  /**
   * The int8 twin and what became of each float {@code MatMul} with an initializer weight.
   *
   * @param host the twin, named as given, with the SHA-256 of its serialized bytes (write {@code
   *     host().model().toByteArray()} to a file to open grafts compiled against it)
   * @param quantized the quantized layers' {@code MatMulInteger} node names, in graph order
   * @param skipped each such {@code MatMul} left float, by node name, with why
   */
  public record Result(HostModel host, List<String> quantized, Map<String, String> skipped) {}

  /**
   * Quantizes {@code host}'s linear layers.
   *
   * @throws IllegalArgumentException when the host's opset is below 11 (no {@code
   *     DynamicQuantizeLinear}) or it has no linear layer to quantize (with the reasons)
   */
  public static Result quantize(HostModel host, String name) {
    ModelProto model = host.model();
    if (OnnxImport.opset(model) < 11) {
      throw new IllegalArgumentException("int8 quantization needs opset 11 or newer (DynamicQuantizeLinear), but "
          + host.name() + " is opset " + OnnxImport.opset(model));
    }
    GraphProto graph = model.getGraph();
    Map<String, TensorProto> initializers = new HashMap<>();
    graph.getInitializerList().forEach(t -> initializers.put(t.getName(), t));
    Map<String, Integer> readers = new HashMap<>();
    for (NodeProto n : graph.getNodeList()) {
      n.getInputList().forEach(in -> readers.merge(in, 1, Integer::sum));
    }
    graph.getOutputList().forEach(o -> readers.merge(o.getName(), 1, Integer::sum));

    List<NodeProto> nodes = new ArrayList<>();
    Map<String, List<String>> quantizedInputs = new HashMap<>();
    Set<String> removed = new HashSet<>();
    List<TensorProto> added = new ArrayList<>();
    List<String> quantized = new ArrayList<>();
    Map<String, String> skipped = new LinkedHashMap<>();
    int unnamed = 0;
    for (NodeProto n : graph.getNodeList()) {
      boolean linear = n.getOpType().equals("MatMul") && n.getDomain().isEmpty() && n.getInputCount() == 2
          && initializers.containsKey(n.getInput(1)) && !initializers.containsKey(n.getInput(0));
      if (!linear) {
        nodes.add(n);
        continue;
      }
      String nodeName = n.getName().isEmpty() ? "/int8/MatMul_" + unnamed++ : n.getName();
      TensorProto w = initializers.get(n.getInput(1));
      String why = whyNot(w, readers.getOrDefault(w.getName(), 0));
      double[] values = why == null ? Tensors.readDoubles(w) : null;
      if (why == null && Arrays.stream(values).anyMatch(v -> !Double.isFinite(v))) {
        why = "its weight " + w.getName() + " has a NaN or infinite value";
      }
      if (why != null) {
        skipped.put(nodeName, why);
        nodes.add(n);
        continue;
      }
      String x = n.getInput(0);
      List<String> xq = quantizedInputs.get(x);
      if (xq == null) {
        String base = "/int8/" + x.replaceAll("[^A-Za-z0-9_./]", "_");
        xq = List.of(base + "_quantized", base + "_scale", base + "_zero_point");
        quantizedInputs.put(x, xq);
        nodes.add(NodeProto.newBuilder().setName(base + "/DynamicQuantizeLinear").setOpType("DynamicQuantizeLinear")
            .addInput(x).addAllOutput(xq).build());
      }
      String q = nodeName + "_quant";
      String wq = w.getName() + "_quantized";
      String ws = w.getName() + "_scale";
      added.addAll(quantizeColumns(w, values, wq, ws));
      removed.add(w.getName());
      String y = n.getOutput(0);
      nodes.add(NodeProto.newBuilder().setName(q).setOpType("MatMulInteger")
          .addInput(xq.get(0)).addInput(wq).addInput(xq.get(2)).addOutput(y + "_int32").build());
      nodes.add(NodeProto.newBuilder().setName(q + "_cast").setOpType("Cast").addInput(y + "_int32")
          .addOutput(y + "_int32_float").addAttribute(AttributeProto.newBuilder().setName("to")
              .setType(AttributeProto.AttributeType.INT).setI(TensorType.FLOAT)).build());
      nodes.add(NodeProto.newBuilder().setName(q + "_scales_mul").setOpType("Mul").addInput(xq.get(1)).addInput(ws)
          .addOutput(y + "_scales").build());
      nodes.add(NodeProto.newBuilder().setName(q + "_output_scale_mul").setOpType("Mul").addInput(y + "_int32_float")
          .addInput(y + "_scales").addOutput(y).build());
      quantized.add(q);
    }
    if (quantized.isEmpty()) {
      throw new IllegalArgumentException(host.name() + " has no linear layer to quantize (a MatMul whose weight is a"
          + " float32 [in, out] initializer only it reads)" + (skipped.isEmpty() ? "" : "; left float: " + skipped));
    }
    GraphProto.Builder g = graph.toBuilder().clearNode().addAllNode(nodes).clearInitializer();
    graph.getInitializerList().stream().filter(t -> !removed.contains(t.getName())).forEach(g::addInitializer);
    added.forEach(g::addInitializer);
    g.clearInput();
    graph.getInputList().stream().filter(i -> !removed.contains(i.getName())).forEach(g::addInput);
    g.clearValueInfo();
    graph.getValueInfoList().stream().filter(v -> !removed.contains(v.getName())).forEach(g::addValueInfo);
    ModelProto out = model.toBuilder().setGraph(g).build();
    return new Result(HostModel.of(name, out), List.copyOf(quantized), skipped);
  }

  /**
   * Why the weight {@code w} read by {@code readers} nodes stays float, judged by its metadata (its
   * values are checked once read), or null when it can be quantized.
   */
  private static @Nullable String whyNot(TensorProto w, int readers) {
    if (readers != 1) {
      return "its weight " + w.getName() + " is read by " + readers
          + " nodes (tied): quantizing it would change them too";
    }
    if (w.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
      return "its weight " + w.getName() + " is external data";
    }
    if (w.getDataType() != TensorType.FLOAT || w.getDimsCount() != 2 || w.getDims(0) < 1 || w.getDims(1) < 1) {
      return "its weight " + w.getName() + " is not a float32 matrix";
    }
    long count = w.getDims(0) * w.getDims(1);
    long held = w.hasRawData() ? w.getRawData().size() / 4 : w.getFloatDataCount();
    if (held != count || w.hasRawData() && w.getRawData().size() % 4 != 0) {
      return "its weight " + w.getName() + " holds " + held + " values for its " + w.getDims(0) + "×" + w.getDims(1);
    }
    return null;
  }

  /**
   * The int8 weight {@code [in, out]} and float scales {@code [out]} of {@code w} (its values
   * {@code v}), symmetric per column.
   */
  private static List<TensorProto> quantizeColumns(TensorProto w, double[] v, String wqName, String wsName) {
    int in = Math.toIntExact(w.getDims(0));
    int out = Math.toIntExact(w.getDims(1));
    float[] scale = new float[out];
    for (int o = 0; o < out; o++) {
      double max = 0;
      for (int i = 0; i < in; i++) {
        max = Math.max(max, Math.abs(v[i * out + o]));
      }
      scale[o] = max == 0 ? 1f : (float) (max / 127);
    }
    byte[] q = new byte[in * out];
    for (int i = 0; i < in; i++) {
      for (int o = 0; o < out; o++) {
        long r = Math.round(v[i * out + o] / scale[o]);
        q[i * out + o] = (byte) Math.max(-127, Math.min(127, r));
      }
    }
    ByteBuffer s = ByteBuffer.allocate(4 * out).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : scale) {
      s.putFloat(f);
    }
    return List.of(
        TensorProto.newBuilder().setName(wqName).setDataType(TensorType.INT8).addDims(in).addDims(out)
            .setRawData(ByteString.copyFrom(q)).build(),
        TensorProto.newBuilder().setName(wsName).setDataType(TensorType.FLOAT).addDims(out)
            .setRawData(ByteString.copyFrom(s.array())).build());
  }
}
