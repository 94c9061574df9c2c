package dev.isthmus.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.bindings.Isthmus;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;

/** Header, bindings and built library cannot drift apart silently. */
class BindingsMatchHeaderTest {
    private static final Pattern DECL = Pattern.compile(
            "^[A-Za-z_][\\w\\s\\*]*?\\b(isthmus_[a-z0-9_]+)\\s*\\(", Pattern.MULTILINE);

    static Set<String> headerFunctions() throws IOException {
        String text = Files.readString(Path.of(System.getProperty("isthmus.test.header", "../native/include/isthmus.h")));
        text = text.replaceAll("(?s)/\\*.*?\\*/", " "); // comments
        text = text.replaceAll("(?m)^\\s*#.*$", " ");  // preprocessor lines
        Set<String> fns = new TreeSet<>();
        Matcher m = DECL.matcher(text);
        while (m.find()) fns.add(m.group(1));
        return fns;
    }

    static Set<String> bindingFunctions() {
        // jextract emits, per function f, a public static method f plus f$handle / f$address / f$descriptor
        return Arrays.stream(Isthmus.class.getMethods())
                .filter(mt -> Modifier.isStatic(mt.getModifiers()))
                .map(Method::getName)
                .filter(n -> n.startsWith("isthmus_") && !n.contains("$"))
                .collect(Collectors.toCollection(TreeSet::new));
    }

    @Test
    void everyHeaderFunctionHasABindingAndViceVersa() throws IOException {
        Set<String> header = headerFunctions();
        assertTrue(header.size() >= 20, "parsed too few declarations from isthmus.h: " + header);
        assertEquals(header, bindingFunctions(),
                "bindings/ is out of date with native/include/isthmus.h: run bindings/regenerate.sh");
    }

    @Test
    void everyBindingResolvesInTheBuiltLibrary() throws IOException {
        Path lib = NativeLibrary.load();
        List<String> missing = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup lookup = SymbolLookup.libraryLookup(lib, arena);
            for (String fn : bindingFunctions())
                if (lookup.find(fn).isEmpty()) missing.add(fn);
        }
        assertTrue(missing.isEmpty(), "symbols bound but not exported by " + lib + ": " + missing);
    }

    @Test
    void abiConstantsAgree() {
        NativeLibrary.load();
        assertEquals(Isthmus.ISTHMUS_ABI_VERSION(), Isthmus.isthmus_abi_version());
    }
}
