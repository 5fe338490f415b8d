package dev.graft.runtime;

import static dev.graft.runtime.TinyGraphs.intAttr;
import static dev.graft.runtime.TinyGraphs.value;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.data.Example;
import dev.graft.runtime.data.LabelledText;
import dev.graft.runtime.data.Split;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.text.TextTokenizer;
import dev.graft.runtime.train.LearningRate;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import dev.graft.spec.manifest.AdamW;
import dev.graft.spec.manifest.ClassificationHead;
import dev.graft.spec.manifest.Dim;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.Pooling;
import dev.graft.spec.manifest.TrainStep;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole runtime on the real host and data, with a hand-written graph standing in for the
 * compiler: a classification head over mean-pooled word embeddings of all-MiniLM-L6-v2 (the
 * 30522 × 384 embedding matrix fed as an external initializer from the 90 MB host), trained
 * with AdamW written in standard ONNX ops, on the Yelp sentences.
 */
class EndToEndTest {
  static final String EMBEDDINGS = "embeddings.word_embeddings.weight";
  static final int HIDDEN = 384;

  @TempDir Path dir;

  static Manifest manifest() {
    Dim batch = Dim.newBuilder().setSymbol("batch").build();
    Dim seq = Dim.newBuilder().setSymbol("sequence").build();
    Manifest.Builder m = Manifest.newBuilder()
        .setName("Bag")
        .setHost("all-minilm-l6-v2.onnx")
        .addHostInitializers(EMBEDDINGS)
        .setHead(ClassificationHead.newBuilder().setNumLabels(2).setPooling(Pooling.MEAN).setHiddenSize(HIDDEN))
        .setOptimizer(AdamW.newBuilder().setBeta1(0.9).setBeta2(0.999).setEpsilon(1e-8).setWeightDecay(0.01))
        .setTrain(TrainStep.newBuilder().setLabels("labels").setStep("step").setLearningRate("learning_rate")
            .setLoss("loss").setUpdatedSuffix(".next").setFirstMomentSuffix(".adam_m").setSecondMomentSuffix(".adam_v"))
        .setLogits("logits");
    for (String name : List.of("input_ids", "attention_mask", "token_type_ids")) {
      m.addInputs(HostInput.newBuilder().setName(name).setElemType(7).addShape(batch).addShape(seq));
    }
    m.addParameters(Parameter.newBuilder().setName("classifier/weight").setSite("classifier")
        .addShape(HIDDEN).addShape(2).setRole(ParameterRole.HEAD_WEIGHT).setInit(Init.NORMAL).setInitScale(0.02)
        .setSaveKey("base_model.model.classifier.weight").addSaveShape(2).addSaveShape(HIDDEN).setSaveTransposed(true));
    m.addParameters(Parameter.newBuilder().setName("classifier/bias").setSite("classifier")
        .addShape(2).setRole(ParameterRole.HEAD_BIAS).setInit(Init.ZEROS)
        .setSaveKey("base_model.model.classifier.bias").addSaveShape(2));
    m.setAdapterConfig("{\"peft_type\": \"LORA\", \"task_type\": \"SEQ_CLS\", \"modules_to_save\": [\"classifier\"]}");
    return m.build();
  }

  private static final class G {
    final GraphProto.Builder g = GraphProto.newBuilder();
    int n;

    String op(String type, String[] in, NodeProto.Builder... extra) {
      String out = type.toLowerCase() + "_" + (n++);
      NodeProto.Builder node = NodeProto.newBuilder().setOpType(type).setName(out).addOutput(out);
      for (String s : in) {
        node.addInput(s);
      }
      for (NodeProto.Builder e : extra) {
        node.addAllAttribute(e.getAttributeList());
      }
      g.addNode(node);
      return out;
    }

    String op(String type, String... in) {
      return op(type, in, new NodeProto.Builder[0]);
    }

    String keep0(String type, String... in) {
      return op(type, in, NodeProto.newBuilder().addAttribute(intAttr("keepdims", 0)));
    }

    String scalar(float v) {
      String name = "c" + (n++);
      g.addInitializer(TinyGraphs.floats(name, new long[0], v));
      return name;
    }

    String ints(long... v) {
      String name = "i" + (n++);
      TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(7).addDims(v.length);
      for (long x : v) {
        t.addInt64Data(x);
      }
      g.addInitializer(t);
      return name;
    }

    void rename(String from, String to) {
      g.addNode(NodeProto.newBuilder().setOpType("Identity").setName("out_" + to).addInput(from).addOutput(to));
    }
  }

  /** Forward pass up to logits; returns {pooled, logits}. */
  static String[] forward(G b) {
    b.g.addInitializer(TensorProto.newBuilder().setName(EMBEDDINGS).setDataType(1).addDims(30522).addDims(HIDDEN)
        .setDataLocation(TensorProto.DataLocation.EXTERNAL)
        .addExternalData(StringStringEntryProto.newBuilder().setKey("location").setValue("absent.bin")));
    for (String name : List.of("input_ids", "attention_mask", "token_type_ids")) {
      b.g.addInput(value(name, 7, "batch", "sequence"));
    }
    b.g.addInput(value("classifier/weight", 1, (long) HIDDEN, 2L));
    b.g.addInput(value("classifier/bias", 1, 2L));
    String emb = b.op("Gather", EMBEDDINGS, "input_ids");
    String mask = b.op("Cast", new String[] {"attention_mask"}, NodeProto.newBuilder().addAttribute(intAttr("to", 1)));
    String mask3 = b.op("Unsqueeze", mask, b.ints(2));
    String summed = b.keep0("ReduceSum", b.op("Mul", emb, mask3), b.ints(1));
    String count = b.op("ReduceSum", mask, b.ints(1));
    String pooled = b.op("Div", summed, count);
    String logits = b.op("Add", b.op("MatMul", pooled, "classifier/weight"), "classifier/bias");
    return new String[] {pooled, logits};
  }

  static byte[] inference() {
    G b = new G();
    String[] f = forward(b);
    b.rename(f[1], "logits");
    b.g.addOutput(value("logits", 1, "batch", 2L));
    return TinyGraphs.model(b.g.build()).toByteArray();
  }

  static byte[] training() {
    G b = new G();
    String[] f = forward(b);
    b.g.addInput(value("labels", 7, "batch"));
    b.g.addInput(value("step", 1));
    b.g.addInput(value("learning_rate", 1));
    String pooled = f[0];
    String logits = f[1];
    b.g.addNode(NodeProto.newBuilder().setOpType("SoftmaxCrossEntropyLoss").setName("sce")
        .addInput(logits).addInput("labels").addOutput("loss").addOutput("log_prob"));
    String prob = b.op("Exp", "log_prob");
    String depth = "depth";
    b.g.addInitializer(TensorProto.newBuilder().setName(depth).setDataType(7).addInt64Data(2));
    b.g.addInitializer(TinyGraphs.floats("onehot_values", new long[] {2}, 0f, 1f));
    String onehot = b.op("OneHot", "labels", depth, "onehot_values");
    String batch = b.op("Cast", new String[] {b.op("Shape", "labels")}, NodeProto.newBuilder().addAttribute(intAttr("to", 1)));
    String dlogits = b.op("Div", b.op("Sub", prob, onehot), batch);
    String gW = b.op("MatMul", b.op("Transpose", pooled), dlogits);
    String gb = b.keep0("ReduceSum", dlogits, b.ints(0));
    String bc1 = b.op("Sub", b.scalar(1f), b.op("Pow", b.scalar(0.9f), "step"));
    String bc2 = b.op("Sub", b.scalar(1f), b.op("Pow", b.scalar(0.999f), "step"));
    for (String[] pg : new String[][] {{"classifier/weight", gW}, {"classifier/bias", gb}}) {
      String p = pg[0];
      String g = pg[1];
      String m = b.op("Add", b.op("Mul", b.scalar(0.9f), p + ".adam_m"), b.op("Mul", b.scalar(0.1f), g));
      String v = b.op("Add", b.op("Mul", b.scalar(0.999f), p + ".adam_v"), b.op("Mul", b.scalar(0.001f), b.op("Mul", g, g)));
      String step = b.op("Div", b.op("Div", m, bc1), b.op("Add", b.op("Sqrt", b.op("Div", v, bc2)), b.scalar(1e-8f)));
      String decayed = b.op("Add", step, b.op("Mul", b.scalar(0.01f), p));
      String next = b.op("Sub", p, b.op("Mul", "learning_rate", decayed));
      long[] dims = p.endsWith("weight") ? new long[] {HIDDEN, 2} : new long[] {2};
      Object[] shape = java.util.Arrays.stream(dims).boxed().toArray();
      b.g.addInput(value(p + ".adam_m", 1, shape));
      b.g.addInput(value(p + ".adam_v", 1, shape));
      b.rename(next, p + ".next");
      b.rename(m, p + ".adam_m.next");
      b.rename(v, p + ".adam_v.next");
      b.g.addOutput(value(p + ".next", 1, shape));
      b.g.addOutput(value(p + ".adam_m.next", 1, shape));
      b.g.addOutput(value(p + ".adam_v.next", 1, shape));
    }
    b.g.addOutput(value("loss", 1));
    return TinyGraphs.model(b.g.build()).toByteArray();
  }

  @Test
  void trainsAHeadOnTheRealHostAndSavesAPeftAdapter() throws Exception {
    Path data = Path.of("../examples/src/main/resources/dev/graft/examples/sentiment/yelp.tsv");
    Assumptions.assumeTrue(Files.isRegularFile(data), "examples data not beside runtime");
    Split<LabelledText> split = Split.of(LabelledText.readTsv(data), 0.2, 1);
    List<Example> train = new ArrayList<>();
    List<Example> heldOut = new ArrayList<>();
    try (TextTokenizer tok = TextTokenizer.fromClasspath("all-minilm-l6-v2-tokenizer.json", 64)) {
      for (LabelledText t : split.train()) {
        train.add(new Example(tok.encode(t.text()), t.label()));
      }
      for (LabelledText t : split.heldOut()) {
        heldOut.add(new Example(tok.encode(t.text()), t.label()));
      }
    }
    AdapterGraphs graphs = AdapterGraphs.of(manifest(), inference(), training());
    try (AdapterModel model = AdapterModel.open(graphs, ModelOptions.defaults().withSeed(5))) {
      Trainer trainer = Trainer.builder().batchSize(16).epochs(4).learningRate(LearningRate.linear(2e-2f, 0.1))
          .seed(3).progress(null).build();
      double before = trainer.evaluate(model, heldOut);
      TrainingResult r = trainer.fit(model, train, heldOut);
      assertEquals(4 * 50, r.steps());
      assertTrue(r.epochs().get(3).meanLoss() < r.epochs().get(0).meanLoss(), "loss falls: " + r.epochs());
      assertTrue(r.finalAccuracy() > 0.7, "held-out accuracy " + r.finalAccuracy() + " (before " + before + ")");

      PeftAdapters.save(model, dir);
      Map<String, TensorData> saved = Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
      assertArrayEquals(new long[] {2, HIDDEN}, saved.get("base_model.model.classifier.weight").shape());
      float[] w = model.getParameter("classifier/weight");
      float[] peft = saved.get("base_model.model.classifier.weight").toFloats();
      assertEquals(w[5 * 2 + 1], peft[HIDDEN + 5], 0f, "row 5, label 1 transposed");
    }
  }
}
