package dev.ferrata.interop.seata2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TimeZone;

import org.apache.seata.core.compressor.CompressorFactory;
import org.apache.seata.core.compressor.CompressorType;
import org.apache.seata.rm.datasource.undo.BranchUndoLog;
import org.apache.seata.rm.datasource.undo.mysql.MySQLUndoLogManager;
import org.apache.seata.rm.datasource.undo.parser.JacksonUndoLogParser;
import org.junit.jupiter.api.Test;

/**
 * Undo-log vectors shared with Rust (crates/ferrata-at/tests/vectors, see its README):
 * Seata's own JacksonUndoLogParser and compressors must read the vectors they wrote back to
 * the same models, and read what Ferrata's Rust encoder wrote (vectors/rust) to the same
 * models too. With -Dundo.vectors.write=true the Java vectors are (re)written first.
 */
class UndoLogVectorsTest {
    static {
        // JacksonUndoLogParser converts LocalDateTime with the JVM zone it sees first.
        TimeZone.setDefault(TimeZone.getTimeZone("UTC"));
        // The undo-log manager (for buildContext) reads Seata's configuration when it loads.
        System.setProperty("config.type", "file");
        System.setProperty("registry.type", "file");
        System.setProperty("config.file.name", "file.conf"); // need not exist
        System.setProperty("registry.file.name", "file.conf");
    }

    static final List<CompressorType> COMPRESSORS = List.of(CompressorType.GZIP, CompressorType.ZIP,
        CompressorType.BZIP2, CompressorType.LZ4, CompressorType.DEFLATER, CompressorType.ZSTD);

    /** Widens buildContext (protected) for the context vectors. */
    static final class ContextBuilder extends MySQLUndoLogManager {
        String build(String serializer, CompressorType type, String... others) {
            return buildContext(serializer, type, others);
        }
    }

    final JacksonUndoLogParser parser = newParser();

    static JacksonUndoLogParser newParser() {
        JacksonUndoLogParser parser = new JacksonUndoLogParser();
        parser.init();
        return parser;
    }

    static Path vectors() {
        String module = System.getProperty("interop.module.dir", ".");
        return Path.of(module, "..", "..", "..", "crates", "ferrata-at", "tests", "vectors").normalize();
    }

    /** java2 for org.apache.seata (2.x), java1 for io.seata (1.x: this file, rewritten). */
    static String generation() {
        return BranchUndoLog.class.getName().startsWith("io.") ? "java1" : "java2";
    }

    static boolean writing() {
        return Boolean.getBoolean("undo.vectors.write");
    }

    /** The model as this parser encodes it: equal strings mean equal values, classes and scales. */
    String canonical(BranchUndoLog log) {
        return new String(parser.encode(log), StandardCharsets.UTF_8);
    }

    @Test
    void javaVectorsDecodeToTheirModels() throws Exception {
        Path dir = vectors().resolve(generation());
        Files.createDirectories(dir.resolve("compressed"));
        for (Map.Entry<String, BranchUndoLog> e : UndoLogModels.all().entrySet()) {
            Path file = dir.resolve(e.getKey() + ".json");
            byte[] encoded = parser.encode(e.getValue());
            if (writing()) {
                Files.write(file, encoded);
            }
            assertEquals(canonical(e.getValue()), canonical(parser.decode(Files.readAllBytes(file))), file.toString());
        }
        BranchUndoLog large = UndoLogModels.large();
        byte[] plain = parser.encode(large);
        assertTrue(plain.length > 64 * 1024, "the large log must exceed the compression threshold");
        for (CompressorType type : COMPRESSORS) {
            Path file = dir.resolve("compressed").resolve("large." + type.name());
            if (writing()) {
                Files.write(file, CompressorFactory.getCompressor(type.getCode()).compress(plain));
            }
            byte[] unpacked = CompressorFactory.getCompressor(type.getCode()).decompress(Files.readAllBytes(file));
            assertArrayEquals(plain, unpacked, file.toString());
        }
        Path marker = dir.resolve("global_finished.json");
        if (writing()) {
            Files.write(marker, parser.getDefaultContent());
        }
        BranchUndoLog empty = parser.decode(Files.readAllBytes(marker));
        assertEquals(null, empty.getXid());
        assertEquals(0L, empty.getBranchId());
    }

    @Test
    void contextsAreBuiltAsRecorded() throws Exception {
        ContextBuilder builder = new ContextBuilder();
        List<String> lines = new ArrayList<>();
        lines.add(builder.build("jackson", CompressorType.NONE, "map", "4194304"));
        lines.add(builder.build("jackson", CompressorType.ZIP, "map", "4194304"));
        lines.add(builder.build("jackson", CompressorType.NONE, "map", ""));
        lines.add(builder.build("jackson", CompressorType.NONE));
        lines.add(builder.build("jackson", CompressorType.ZSTD, "map", "67108864", "subId", "11,12,"));
        Path file = vectors().resolve(generation()).resolve("contexts.txt");
        if (writing()) {
            Files.write(file, (String.join("\n", lines) + "\n").getBytes(StandardCharsets.UTF_8));
        }
        assertEquals(lines, Files.readAllLines(file, StandardCharsets.UTF_8));
    }

    /** Ferrata writes the 2.x layout only (Java 2.x cannot read 1.x's class names and back). */
    @Test
    void rustVectorsDecodeToTheSameModels() throws Exception {
        if (!generation().equals("java2")) {
            return;
        }
        Path dir = vectors().resolve("rust");
        int checked = 0;
        for (Map.Entry<String, BranchUndoLog> e : UndoLogModels.all().entrySet()) {
            Path file = dir.resolve(e.getKey() + ".json");
            assertTrue(Files.exists(file), "missing Rust vector " + file);
            assertEquals(canonical(e.getValue()), canonical(parser.decode(Files.readAllBytes(file))), file.toString());
            checked++;
        }
        String plain = canonical(UndoLogModels.large());
        for (CompressorType type : COMPRESSORS) {
            Path file = dir.resolve("compressed").resolve("large." + type.name());
            assertTrue(Files.exists(file), "missing Rust vector " + file);
            byte[] unpacked = CompressorFactory.getCompressor(type.getCode()).decompress(Files.readAllBytes(file));
            assertEquals(plain, canonical(parser.decode(unpacked)), file.toString());
            checked++;
        }
        assertEquals(UndoLogModels.all().size() + COMPRESSORS.size(), checked);
    }
}
