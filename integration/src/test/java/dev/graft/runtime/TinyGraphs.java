package dev.graft.runtime;

import com.google.protobuf.ByteString;
import dev.graft.spec.manifest.ClassificationHead;
import dev.graft.spec.manifest.Dim;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.TrainStep;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Tiny hand-built graphs that follow the compiler's contract, with one parameter {@code p}
 * ([1, 2]) and one host weight {@code host_w} ([1], value {@link #HOST_W}):
 *
 * <ul>
 *   <li>inference: {@code logits = sum_seq(float(input_ids)) * host_w + p}, shape [batch, 2];
 *   <li>training: {@code loss = sum(p * p * host_w)}, {@code p.next = p - (lr * host_w) * p},
 *       {@code p.adam_m.next = p.adam_m + p}, {@code p.adam_v.next = p.adam_v + step}.
 * </ul>
 */
public final class TinyGraphs {
  static final float HOST_W = 3f;

  private TinyGraphs() {}

  static Manifest manifest() {
    Dim batch = Dim.newBuilder().setSymbol("batch").build();
    Dim seq = Dim.newBuilder().setSymbol("sequence").build();
    return Manifest.newBuilder()
        .setName("Tiny")
        .setHost("tiny-host.onnx")
        .addHostInitializers("host_w")
        .addInputs(HostInput.newBuilder().setName("input_ids").setElemType(7).addShape(batch).addShape(seq))
        .addInputs(HostInput.newBuilder().setName("attention_mask").setElemType(7).addShape(batch).addShape(seq))
        .addParameters(
            Parameter.newBuilder()
                .setName("p")
                .setSite("classifier")
                .addShape(1)
                .addShape(2)
                .setRole(ParameterRole.HEAD_BIAS)
                .setInit(Init.ZEROS)
                .setSaveKey("base_model.model.classifier.p")
                .addSaveShape(2))
        .setAdapterConfig("{\"peft_type\": \"LORA\", \"r\": 8, \"target_modules\": []}")
        .setHead(ClassificationHead.newBuilder().setNumLabels(2))
        .setTrain(
            TrainStep.newBuilder()
                .setLabels("labels")
                .setStep("step")
                .setLearningRate("lr")
                .setLoss("loss")
                .setUpdatedSuffix(".next")
                .setFirstMomentSuffix(".adam_m")
                .setSecondMomentSuffix(".adam_v"))
        .setLogits("logits")
        .build();
  }

  static ModelProto host() {
    GraphProto g =
        GraphProto.newBuilder()
            .setName("host")
            .addInitializer(floats("host_w", new long[] {1}, HOST_W))
            .addNode(node("Identity", "id", new String[] {"host_w"}, new String[] {"out"}))
            .addOutput(value("out", 1, 1L))
            .build();
    return model(g);
  }

  static ModelProto inference() {
    GraphProto.Builder g = GraphProto.newBuilder().setName("tiny_infer");
    g.addInput(value("input_ids", 7, "batch", "sequence"));
    g.addInput(value("attention_mask", 7, "batch", "sequence"));
    g.addInput(value("p", 1, 1L, 2L));
    g.addInitializer(external("host_w", 1));
    g.addInitializer(
        TensorProto.newBuilder().setName("axis1").setDataType(7).addDims(1).addInt64Data(1).build());
    g.addNode(node("Cast", "cast", new String[] {"input_ids"}, new String[] {"ids_f"}, intAttr("to", 1)));
    g.addNode(node("ReduceSum", "sum", new String[] {"ids_f", "axis1"}, new String[] {"s"}, intAttr("keepdims", 1)));
    g.addNode(node("Mul", "scale", new String[] {"s", "host_w"}, new String[] {"sw"}));
    g.addNode(node("Add", "add", new String[] {"sw", "p"}, new String[] {"logits"}));
    g.addOutput(value("logits", 1, "batch", 2L));
    return model(g.build());
  }

  static ModelProto training() {
    return training(false);
  }

  /** The training graph; with {@code dropoutSeed}, it also takes an int64 scalar input {@code dropout_seed}. */
  static ModelProto training(boolean dropoutSeed) {
    GraphProto.Builder g = GraphProto.newBuilder().setName("tiny_train");
    if (dropoutSeed) {
      g.addInput(value("dropout_seed", 7));
    }
    g.addInput(value("input_ids", 7, "batch", "sequence"));
    g.addInput(value("attention_mask", 7, "batch", "sequence"));
    g.addInput(value("labels", 7, "batch"));
    g.addInput(value("p", 1, 1L, 2L));
    g.addInput(value("p.adam_m", 1, 1L, 2L));
    g.addInput(value("p.adam_v", 1, 1L, 2L));
    g.addInput(value("step", 1));
    g.addInput(value("lr", 1));
    g.addInitializer(external("host_w", 1));
    g.addNode(node("Mul", "pp", new String[] {"p", "p"}, new String[] {"pp"}));
    g.addNode(node("Mul", "ppw", new String[] {"pp", "host_w"}, new String[] {"ppw"}));
    g.addNode(node("ReduceSum", "loss", new String[] {"ppw"}, new String[] {"loss"}, intAttr("keepdims", 0)));
    g.addNode(node("Mul", "lrw", new String[] {"lr", "host_w"}, new String[] {"lrw"}));
    g.addNode(node("Mul", "delta", new String[] {"lrw", "p"}, new String[] {"delta"}));
    g.addNode(node("Sub", "update", new String[] {"p", "delta"}, new String[] {"p.next"}));
    g.addNode(node("Add", "m", new String[] {"p.adam_m", "p"}, new String[] {"p.adam_m.next"}));
    g.addNode(node("Add", "v", new String[] {"p.adam_v", "step"}, new String[] {"p.adam_v.next"}));
    g.addOutput(value("loss", 1));
    g.addOutput(value("p.next", 1, 1L, 2L));
    g.addOutput(value("p.adam_m.next", 1, 1L, 2L));
    g.addOutput(value("p.adam_v.next", 1, 1L, 2L));
    return model(g.build());
  }

  /** Writes the host next to nothing else and returns graphs whose manifest points at it. */
  public static AdapterGraphs graphs() {
    return AdapterGraphs.of(manifest(), inference().toByteArray(), training().toByteArray());
  }

  public static Path writeHost(Path dir) throws IOException {
    Path p = dir.resolve("tiny-host.onnx");
    Files.write(p, host().toByteArray());
    return p;
  }

  static ModelProto model(GraphProto g) {
    return ModelProto.newBuilder()
        .setIrVersion(8)
        .setProducerName("graft-test")
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
        .setGraph(g)
        .build();
  }

  static TensorProto floats(String name, long[] dims, float... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      b.putFloat(v);
    }
    TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(1).setRawData(ByteString.copyFrom(b.array()));
    for (long d : dims) {
      t.addDims(d);
    }
    return t.build();
  }

  static TensorProto external(String name, long... dims) {
    TensorProto.Builder t =
        TensorProto.newBuilder()
            .setName(name)
            .setDataType(1)
            .setDataLocation(TensorProto.DataLocation.EXTERNAL)
            .addExternalData(StringStringEntryProto.newBuilder().setKey("location").setValue("does-not-exist.bin"))
            .addExternalData(StringStringEntryProto.newBuilder().setKey("offset").setValue("0"))
            .addExternalData(StringStringEntryProto.newBuilder().setKey("length").setValue("4"));
    for (long d : dims) {
      t.addDims(d);
    }
    return t.build();
  }

  static NodeProto node(String op, String name, String[] in, String[] out, AttributeProto... attrs) {
    NodeProto.Builder n = NodeProto.newBuilder().setOpType(op).setName(name);
    for (String s : in) {
      n.addInput(s);
    }
    for (String s : out) {
      n.addOutput(s);
    }
    for (AttributeProto a : attrs) {
      n.addAttribute(a);
    }
    return n.build();
  }

  static AttributeProto intAttr(String name, long v) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(v).build();
  }

  /** A value info; dims are Long (fixed) or String (symbolic). */
  static ValueInfoProto value(String name, int elemType, Object... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (Object d : dims) {
      TensorShapeProto.Dimension.Builder db = TensorShapeProto.Dimension.newBuilder();
      if (d instanceof Long l) {
        db.setDimValue(l);
      } else {
        db.setDimParam((String) d);
      }
      shape.addDim(db);
    }
    return ValueInfoProto.newBuilder()
        .setName(name)
        .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(elemType).setShape(shape)))
        .build();
  }
}
