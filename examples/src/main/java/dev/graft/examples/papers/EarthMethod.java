package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.train.TrainingResult;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;

/**
 * Earth-Adapter (Hu et al. 2025, mixture of frequency adaptation) on the torch-exported ViT fixture (2 layers ×
 * 32, 16×16 RGB images in 4×4 patches: a class token and a 4×4 grid), beside LoRA r8 on the same ViT's query and
 * value, on a synthetic task: classify an image by the dominant spatial frequency of a coloured grating (1, 3 or
 * 6–7 cycles across the image, random orientation, phase and colour, plus noise). The images are generated
 * deterministically here and fed as 8-bit pixel values: the graft's host is the ViT behind {@code Cast → (p −
 * 127.5) / 64 → Reshape [batch, 3, 16, 16]}, since the runtime feeds integer host inputs. The sentiment host of
 * the other rows is not used; this row's LoRA reference is its own, reported in the row's extra.
 */
final class EarthMethod implements PaperMethod {
  static final String VIT = "integration/src/test/resources/hosts/torch/vit_opset17.onnx";
  static final int SIDE = 16;
  static final int PIXELS = 3 * SIDE * SIDE;

  @Override
  public String id() {
    return "earth";
  }

  @Override
  public String name() {
    return "Earth-Adapter r4 (Hu et al. 2025; ViT fixture, frequency task)";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    ModelProto pixelModel = pixelHost(ModelProto.parseFrom(Files.readAllBytes(find(VIT))));
    HostModel vit = HostModel.of("vit_pixels", pixelModel);
    // The runtime opens the host from a file: the wrapped ViT is written beside the saved adapters' folder.
    Path hostFile = saved.resolveSibling(id() + "-host.onnx");
    Files.write(hostFile, pixelModel.toByteArray());
    List<Example> train = images(600, 11);
    List<Example> heldOut = images(300, 12);
    int epochs = context.epochs();
    Row earth = train(Graft.host(vit).name("PapersEarth").earthAdapter("", o -> o.set("reduction", 8).set("cutoff", 0.5))
        .classification(3, c -> c.pooling(ClassificationSpec.Pooling.MEAN)).compile(), epochs, 5e-3f, train,
        heldOut, saved, hostFile);
    Path loraSaved = saved.resolve("lora-reference");
    Files.createDirectories(loraSaved);
    Row lora = train(Graft.host(vit).name("PapersEarthLora")
        .lora(".*/attention/attention/(query|value)/MatMul", o -> o.rank(8).alpha(16))
        .classification(3, c -> c.pooling(ClassificationSpec.Pooling.MEAN)).compile(), epochs, 5e-3f, train,
        heldOut, loraSaved, hostFile);
    String extra = String.format(Locale.ROOT, "ViT fixture, %d epochs, %d train / %d held-out images, 3 classes;"
        + " LoRA r8 (query, value) on the same ViT and data: params=%d accuracy=%.4f steps_per_s=%.2f",
        epochs, train.size(), heldOut.size(), lora.params(), lora.accuracy(), lora.stepsPerSecond());
    return new PaperResult(name(), earth.params(), PapersBenchmark.bytes(saved) - PapersBenchmark.bytes(loraSaved),
        earth.accuracy(), earth.stepsPerSecond(), extra);
  }

  record Row(long params, double accuracy, double stepsPerSecond) {}

  private static Row train(CompiledGraft graft, int epochs, float lr, List<Example> train, List<Example> heldOut,
      Path saved, Path host) throws Exception {
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(42).withHost(host))) {
      TrainingResult result = PapersBenchmark.trainer(epochs, lr).fit(model, train, heldOut);
      model.saveAdapter(saved);
      return new Row(model.getParameterCount(), result.finalAccuracy(), result.stepsPerSecond());
    }
  }

  /**
   * {@code n} images, labels 0 (1 cycle across the image), 1 (3 cycles), 2 (6 or 7 cycles) in turn: a grating
   * {@code cos(2π(fy·y + fx·x)/16 + φ)} along a random one of four orientations, each channel scaled by a random
   * colour weight, plus Gaussian noise (σ 0.35), quantized to 0..255.
   */
  static List<Example> images(int n, long seed) {
    Random r = new Random(seed);
    int[][] directions = {{1, 0}, {0, 1}, {1, 1}, {1, -1}};
    List<Example> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int label = i % 3;
      int cycles = switch (label) {
        case 0 -> 1;
        case 1 -> 3;
        default -> 6 + r.nextInt(2);
      };
      int[] d = directions[r.nextInt(directions.length)];
      double phase = r.nextDouble() * 2 * Math.PI;
      long[] pixels = new long[PIXELS];
      for (int c = 0; c < 3; c++) {
        double colour = 0.3 + 0.7 * r.nextDouble();
        for (int y = 0; y < SIDE; y++) {
          for (int x = 0; x < SIDE; x++) {
            double v = colour * Math.cos(2 * Math.PI * cycles * (d[0] * y + d[1] * x) / SIDE + phase)
                + 0.35 * r.nextGaussian();
            pixels[(c * SIDE + y) * SIDE + x] = Math.max(0, Math.min(255, Math.round(127.5 + 80 * v)));
          }
        }
      }
      out.add(new Example(Map.of("pixel_ids", pixels), label));
    }
    return out;
  }

  /**
   * The ViT behind an int64 input {@code pixel_ids [batch_size, 768]}: {@code pixel_values = Reshape((Cast(p) −
   * 127.5) / 64, [-1, 3, 16, 16])}.
   */
  static ModelProto pixelHost(ModelProto vit) {
    var graph = vit.getGraph().toBuilder();
    ValueInfoProto pixels = graph.getInputList().stream().filter(i -> i.getName().equals("pixel_values")).findFirst()
        .orElseThrow(() -> new IllegalStateException(VIT + " has no input pixel_values"));
    graph.removeInput(graph.getInputList().indexOf(pixels));
    TensorShapeProto shape = TensorShapeProto.newBuilder()
        .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("batch_size"))
        .addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(PIXELS)).build();
    graph.addInput(ValueInfoProto.newBuilder().setName("pixel_ids").setType(TypeProto.newBuilder().setTensorType(
        TypeProto.Tensor.newBuilder().setElemType(TensorProto.DataType.INT64_VALUE).setShape(shape))));
    graph.addInitializer(TensorProto.newBuilder().setName("pixel_ids/mean").setDataType(TensorProto.DataType.FLOAT_VALUE)
        .addFloatData(127.5f));
    graph.addInitializer(TensorProto.newBuilder().setName("pixel_ids/scale").setDataType(TensorProto.DataType.FLOAT_VALUE)
        .addFloatData(1 / 64f));
    graph.addInitializer(TensorProto.newBuilder().setName("pixel_ids/shape").setDataType(TensorProto.DataType.INT64_VALUE)
        .addDims(4).addAllInt64Data(List.of(-1L, 3L, (long) SIDE, (long) SIDE)));
    Function<String, NodeProto.Builder> node = name -> NodeProto.newBuilder().setName("/pixel_ids/" + name);
    List<NodeProto> prologue = List.of(
        node.apply("Cast").setOpType("Cast").addInput("pixel_ids").addOutput("/pixel_ids/Cast_output_0")
            .addAttribute(AttributeProto.newBuilder().setName("to").setType(AttributeProto.AttributeType.INT)
                .setI(TensorProto.DataType.FLOAT_VALUE)).build(),
        node.apply("Sub").setOpType("Sub").addInput("/pixel_ids/Cast_output_0").addInput("pixel_ids/mean")
            .addOutput("/pixel_ids/Sub_output_0").build(),
        node.apply("Mul").setOpType("Mul").addInput("/pixel_ids/Sub_output_0").addInput("pixel_ids/scale")
            .addOutput("/pixel_ids/Mul_output_0").build(),
        node.apply("Reshape").setOpType("Reshape").addInput("/pixel_ids/Mul_output_0").addInput("pixel_ids/shape")
            .addOutput("pixel_values").build());
    List<NodeProto> nodes = new ArrayList<>(prologue);
    nodes.addAll(graph.getNodeList());
    graph.clearNode().addAllNode(nodes);
    return vit.toBuilder().setGraph(graph).build();
  }

  /** {@code relative} under the working directory or the nearest folder above it that has it. */
  private static Path find(String relative) {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      if (Files.isRegularFile(dir.resolve(relative))) {
        return dir.resolve(relative);
      }
    }
    throw new IllegalStateException("cannot find " + relative + " under the working directory or above it;"
        + " run the benchmark from the Graft checkout");
  }
}
