package dev.graft.runtime.export;

import dev.graft.runtime.io.AtomicFiles;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The files of an export: the model and its external data, collected tensor by tensor and written
 * atomically as one folder ({@link AtomicFiles#writeFolder}, the umask honoured): the data file
 * first ({@link ExternalDataWriter}), then the model, whose graph gets each tensor's declaration.
 */
final class ExportFolder {
  private static final System.Logger LOG = System.getLogger(ExportFolder.class.getName());

  private record Tensor(int type, long[] dims, long length, ExternalDataWriter.TensorBytes bytes) {}

  private final Map<String, Tensor> tensors = new LinkedHashMap<>();

  /** A tensor whose bytes are {@code bytes} (position to limit). */
  void add(String name, int type, long[] dims, ByteBuffer bytes) {
    ByteBuffer view = bytes.duplicate();
    tensors.put(name, new Tensor(type, dims, view.remaining(), ch -> write(ch, view.duplicate())));
  }

  static void write(WritableByteChannel ch, ByteBuffer bytes) throws IOException {
    while (bytes.hasRemaining()) {
      ch.write(bytes);
    }
  }

  /**
   * Writes {@code <modelFile>.data} then {@code <modelFile>}: {@code model} with {@code graph},
   * to which the tensors' declarations are added as initializers.
   */
  void write(Path dir, ExportOptions options, String what, ModelProto model, GraphProto.Builder graph) {
    String dataFile = options.dataFile();
    List<TensorProto> declared = new ArrayList<>();
    Map<String, AtomicFiles.Writer> files = new LinkedHashMap<>();
    files.put(dataFile, stream -> {
      long[] next = {options.progressBytes()};
      ExternalDataWriter writer = new ExternalDataWriter(Channels.newChannel(stream), dataFile, position -> {
        if (position >= next[0]) {
          LOG.log(System.Logger.Level.INFO, String.format(Locale.ROOT, "%s: %d MiB of weights written", what,
              position >> 20));
          next[0] = (position / options.progressBytes() + 1) * options.progressBytes();
        }
      });
      for (var e : tensors.entrySet()) {
        Tensor t = e.getValue();
        declared.add(writer.write(e.getKey(), t.type(), t.dims(), t.length(), t.bytes()));
      }
    });
    files.put(options.modelFile(), stream -> model.toBuilder().setGraph(graph.addAllInitializer(declared)).build()
        .writeTo(stream));
    AtomicFiles.writeFolder(dir, files);
  }
}
