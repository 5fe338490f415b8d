package dev.graft.compiler;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.spec.ExternalData;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Checks of an untrusted host before it is imported, so that the import and shape inference see
 * bounded sizes and data that fits its dims:
 *
 * <ul>
 *   <li>every declared dim (inputs, outputs, value infos, initializers, Constant values) is in
 *       0..{@value #MAX_DIM}; an initializer or constant has at most {@value #MAX_DIM} elements,
 *       counted with overflow-checked products ({@code GRAFT007});
 *   <li>raw data has exactly the bytes its dims and element type say ({@code GRAFT006});
 *   <li>external data, as ONNX Runtime allows it: a relative location that stays inside the host's
 *       folder once normalized and, when the folder is known, once symbolic links are followed;
 *       offset and length decimal numbers that fit the file ({@code GRAFT005}). Messages say only
 *       that a location is not allowed or does not fit, never whether another file exists or its size.
 * </ul>
 */
final class HostChecks {
  /** The largest dim and element count of a host tensor. */
  static final long MAX_DIM = Integer.MAX_VALUE;

  private final HostModel host;
  private final @Nullable Object source;
  private final List<Diagnostic> errors = new ArrayList<>();

  private HostChecks(HostModel host, @Nullable Object source) {
    this.host = host;
    this.source = source;
  }

  /** The host's errors, empty when it may be imported. */
  static List<Diagnostic> check(HostModel host, @Nullable Object source) {
    HostChecks c = new HostChecks(host, source);
    c.graph(host.model().getGraph());
    return c.errors;
  }

  private void graph(GraphProto g) {
    for (ValueInfoProto v : g.getInputList()) {
      valueInfo(v);
    }
    for (ValueInfoProto v : g.getOutputList()) {
      valueInfo(v);
    }
    for (ValueInfoProto v : g.getValueInfoList()) {
      valueInfo(v);
    }
    for (TensorProto t : g.getInitializerList()) {
      tensor(t, "initializer '" + t.getName() + "'");
    }
    for (NodeProto n : g.getNodeList()) {
      for (AttributeProto a : n.getAttributeList()) {
        if (a.hasT()) {
          tensor(a.getT(), "attribute '" + a.getName() + "' of node '" + n.getName() + "'");
        }
      }
    }
  }

  private void valueInfo(ValueInfoProto v) {
    if (!v.getType().hasTensorType() || !v.getType().getTensorType().hasShape()) {
      return;
    }
    for (TensorShapeProto.Dimension d : v.getType().getTensorType().getShape().getDimList()) {
      if (d.hasDimValue() && (d.getDimValue() < 0 || d.getDimValue() > MAX_DIM)) {
        tooLarge("value '" + v.getName() + "' with dim " + d.getDimValue(), "dims in 0.." + MAX_DIM);
        return;
      }
    }
  }

  private void tensor(TensorProto t, String what) {
    long count = 1;
    for (long d : t.getDimsList()) {
      if (d < 0 || d > MAX_DIM) {
        tooLarge(what + " with dim " + d, "dims in 0.." + MAX_DIM);
        return;
      }
      count = count == 0 || d == 0 ? 0 : count > MAX_DIM / d ? MAX_DIM + 1 : count * d;
    }
    if (count > MAX_DIM) {
      tooLarge(what + " with dims " + t.getDimsList() + " (more than " + MAX_DIM + " elements)", MAX_DIM + " elements");
      return;
    }
    int bytes = elementBytes(t.getDataType());
    if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
      external(t, what, bytes < 0 ? -1 : count * bytes);
    } else if (t.hasRawData() && bytes > 0 && t.getRawData().size() != count * bytes) {
      errors.add(Diagnostic.of(ErrorCode.HOST_GRAPH_INVALID, source, "host", quoted(),
          what + " has " + t.getRawData().size() + " bytes of raw data, its dims " + t.getDimsList() + " need "
              + count * bytes));
    }
  }

  private void external(TensorProto t, String what, long expectedBytes) {
    String location = null;
    long offset = 0;
    long length = -1;
    for (StringStringEntryProto e : t.getExternalDataList()) {
      switch (e.getKey()) {
        case "location" -> location = e.getValue();
        case "offset", "length" -> {
          long n = number(e.getValue());
          if (n < 0) {
            refuse(what, "has external data " + e.getKey() + " '" + shortened(e.getValue()) + "', not a number in 0.."
                + Long.MAX_VALUE);
            return;
          }
          if (e.getKey().equals("offset")) {
            offset = n;
          } else {
            length = n;
          }
        }
        default -> {}
      }
    }
    if (location == null) {
      refuse(what, "is external data with no location");
      return;
    }
    String relative = ExternalData.relativeLocation(location);
    if (relative == null) {
      refuse(what, "has its external data at '" + shortened(location)
          + "', a location that is not allowed: external data must be at a relative path inside the host's folder");
      return;
    }
    if (length >= 0 && expectedBytes >= 0 && length != expectedBytes) {
      refuse(what, "has external data of length " + length + ", its dims " + t.getDimsList() + " need " + expectedBytes);
      return;
    }
    Path folder = host.folder();
    if (folder == null) {
      return;
    }
    long bytes = length >= 0 ? length : expectedBytes;
    try {
      ExternalData.Resolved place = ExternalData.resolve(folder, relative);
      if (place.place() == ExternalData.Place.MISSING) {
        refuse(what, "has its external data in '" + relative + "', which is not in the host's folder");
        return;
      }
      if (place.place() == ExternalData.Place.DANGLING_LINK) {
        refuse(what, "has its external data at '" + relative + "', a location that is not allowed: external data must be at a"
            + " relative path inside the host's folder");
        return;
      }
      if (place.place() == ExternalData.Place.OUTSIDE) {
        refuse(what, "has its external data at '" + relative + "', a location that is not allowed: external data must"
            + " be at a relative path inside the host's folder (symbolic links may not lead out of it)");
        return;
      }
      Path real = place.file();
      long size = Files.size(real);
      if (bytes >= 0 && (offset > size || bytes > size - offset)) {
        refuse(what, "has external data (offset " + offset + ", " + bytes + " bytes) that does not fit its data file");
      }
    } catch (IOException e) {
      refuse(what, "has external data in '" + relative + "', which cannot be read");
    }
  }

  private static long number(String value) {
    try {
      return Long.parseLong(value.trim());
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  private static String shortened(String s) {
    return s.length() > 80 ? s.substring(0, 80) + "…" : s;
  }

  /** Bytes per element of the fixed-size ONNX element types; -1 for others (strings, sub-byte types). */
  static int elementBytes(int dataType) {
    return switch (dataType) {
      case 2, 3, 9 -> 1; // uint8, int8, bool
      case 4, 5, 10, 16 -> 2; // uint16, int16, float16, bfloat16
      case 1, 6, 12 -> 4; // float, int32, uint32
      case 7, 11, 13, 14 -> 8; // int64, double, uint64, complex64
      case 15 -> 16; // complex128
      default -> -1;
    };
  }

  private String quoted() {
    return "'" + host.name() + "'";
  }

  private void refuse(String what, String why) {
    errors.add(Diagnostic.of(ErrorCode.HOST_EXTERNAL_DATA_REFUSED, source, "host", quoted(), what, why));
  }

  private void tooLarge(String what, String limit) {
    errors.add(Diagnostic.of(ErrorCode.HOST_SIZE_TOO_LARGE, source, "host", quoted(), what, limit));
  }
}
