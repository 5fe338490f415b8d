package dev.graft.processor.write;

import dev.graft.compiler.CompiledGraft;
import java.io.IOException;
import java.io.OutputStream;
import java.io.Writer;
import javax.annotation.processing.Filer;
import javax.lang.model.element.Element;
import javax.tools.FileObject;
import javax.tools.StandardLocation;

/**
 * Writes a compiled graft's resources next to the generated class: {@code <name>.infer.onnx},
 * {@code <name>.train.onnx}, {@code <name>.update.onnx}, {@code <name>.merge.onnx} (ModelProto bytes, without the host's frozen weights) and {@code
 * <name>.manifest.textproto}.
 */
public final class ResourceWriter {
  private ResourceWriter() {}

  /**
   * @param packageName the package of the annotated interface ({@code ""} for the unnamed one)
   */
  public static void write(Filer filer, String packageName, CompiledGraft graft, Element origin)
      throws ResourceWriteException {
    String name = graft.name();
    bytes(filer, packageName, name + CompiledGraft.INFERENCE_SUFFIX, origin, graft.inference());
    bytes(filer, packageName, name + CompiledGraft.TRAIN_SUFFIX, origin, graft.train());
    bytes(filer, packageName, name + CompiledGraft.UPDATE_SUFFIX, origin, graft.update());
    bytes(filer, packageName, name + CompiledGraft.MERGE_SUFFIX, origin, graft.merge());
    String manifest = name + CompiledGraft.MANIFEST_SUFFIX;
    try {
      FileObject file = filer.createResource(StandardLocation.CLASS_OUTPUT, packageName, manifest, origin);
      try (Writer w = file.openWriter()) {
        w.write(graft.manifestText());
      }
    } catch (IOException e) {
      throw new ResourceWriteException(manifest, e);
    }
  }

  private static void bytes(Filer filer, String packageName, String fileName, Element origin,
      com.google.protobuf.MessageLite message) throws ResourceWriteException {
    try {
      FileObject file = filer.createResource(StandardLocation.CLASS_OUTPUT, packageName, fileName, origin);
      try (OutputStream out = file.openOutputStream()) {
        message.writeTo(out);
      }
    } catch (IOException e) {
      throw new ResourceWriteException(fileName, e);
    }
  }

  /** A resource that could not be written, with the file's name. */
  public static final class ResourceWriteException extends Exception {
    private static final long serialVersionUID = 1L;
    private final String file;

    ResourceWriteException(String file, IOException cause) {
      super(file + ": " + cause, cause);
      this.file = file;
    }

    public String file() {
      return file;
    }
  }
}
