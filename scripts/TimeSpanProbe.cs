// Ground truth for pipeline/timespan.py: reads base64 UTF-16LE strings, one per line, and prints
// TimeSpan.Parse(s, CultureInfo.InvariantCulture).Ticks or the exception's type name.
// Compiled by scripts/timespan_corpus.py with Mono's mcs; runs on .NET Core (dotnetcore2) and Mono.
using System;
using System.Globalization;
using System.Reflection;

static class TimeSpanProbe
{
    static void Main()
    {
        Type mono = Type.GetType("Mono.Runtime");
        string name = mono == null
            ? ".NET Core " + Environment.Version
            : "Mono " + mono.GetMethod("GetDisplayName", BindingFlags.NonPublic | BindingFlags.Static).Invoke(null, null);
        Console.WriteLine("RUNTIME " + name);
        string line;
        while ((line = Console.ReadLine()) != null)
        {
            // Decoded char by char so that lone surrogates survive (Encoding.Unicode would replace them).
            byte[] bytes = Convert.FromBase64String(line);
            char[] chars = new char[bytes.Length / 2];
            for (int i = 0; i < chars.Length; i++)
                chars[i] = (char)(bytes[2 * i] | (bytes[2 * i + 1] << 8));
            try
            {
                long ticks = TimeSpan.Parse(new string(chars), CultureInfo.InvariantCulture).Ticks;
                Console.WriteLine("OK " + ticks.ToString(CultureInfo.InvariantCulture));
            }
            catch (Exception error)
            {
                Console.WriteLine("ERR " + error.GetType().Name);
            }
        }
    }
}
