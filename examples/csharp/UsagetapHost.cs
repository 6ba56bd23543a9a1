// A .NET host of the usagetap C ABI through P/Invoke: the proof that C# can use the library.
//
// Build and run (ffi/test.sh does this):
//   mcs -out:UsagetapHost.exe examples/csharp/UsagetapHost.cs
//   LD_LIBRARY_PATH=target/debug mono UsagetapHost.exe CASES_FILE APIM_FILE [CHARGEBACK_FILE]
//
// The files come from ffi/tests/corpus_cases.py (real recorded exchanges from
// ../shared/corpus/dev.jsonl). Every recorded stream in CASES_FILE is fed to a meter in small
// pieces, and every APIM-style Event Hub message in APIM_FILE is metered in one call
// (usagetap_meter_envelope, the subscription key hashed into a consumer id); the counts must equal
// the service's reported usage, and a message cut at 2/3 must come out flagged truncated. The
// `filter` cases of CHARGEBACK_FILE (recorded streams with a usage chunk) go through a usage
// filter and a meter side by side, as a gateway does: the client's bytes must be the stream
// without its usage chunk, and the meter must still read the reported usage. Ends with
// "csharp: N passed, M failed".
//
// Binding rules used here (ffi/README.md): Cdecl everywhere; no bool in any signature (flags are
// uint); usagetap_str is {IntPtr data, UIntPtr len}, UTF-8, not NUL-terminated, borrowed from the
// meter until usagetap_meter_free; out-parameters are written only on USAGETAP_RESULT_OK;
// usagetap_bytes is caller-owned and goes back through usagetap_bytes_free (by ref).

using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace Usagetap
{
    public enum Result : uint
    {
        Ok = 7000,
        NullParameter = 7001,
        Panic = 7002,
        InvalidUtf8 = 7003,
        InvalidJson = 7004,
        InvalidRequest = 7005,
        InvalidOptions = 7006,
        Finished = 7007,
        NotFinished = 7008,
        LimitExceeded = 7009,
        InvalidParameter = 7010,
        Error = 7011,
        NotAnEnvelope = 7012,
    }

    public enum Source : uint { Reported = 0, Computed = 1 }

    public enum Status : uint { Complete = 0, Truncated = 1, Error = 2 }

    static class Mem
    {
        // A copy of `len` bytes at `data` the library owns ({NULL, 0} is empty).
        public static byte[] Copy(IntPtr data, UIntPtr len)
        {
            int n = checked((int)len.ToUInt64());
            var bytes = new byte[n];
            if (data != IntPtr.Zero && n > 0) Marshal.Copy(data, bytes, 0, n);
            return bytes;
        }

        // data[offset..offset+count) at the start of `buffer`, grown when too small and reused
        // between calls: P/Invoke passes whole arrays, and a feed takes a piece of one.
        public static byte[] Piece(ref byte[] buffer, byte[] data, int offset, int count)
        {
            if (buffer.Length < count) buffer = new byte[count];
            Buffer.BlockCopy(data, offset, buffer, 0, count);
            return buffer;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Str
    {
        public IntPtr Data;
        public UIntPtr Len;

        public override string ToString() { return Encoding.UTF8.GetString(Mem.Copy(Data, Len)); }
    }

    // usagetap_slice: bytes owned by the library (a usage filter's output), valid until the next
    // call on the same filter; {NULL, 0} when empty.
    [StructLayout(LayoutKind.Sequential)]
    public struct Slice
    {
        public IntPtr Data;
        public UIntPtr Len;

        public byte[] ToArray() { return Mem.Copy(Data, Len); }
    }

    // usagetap_bytes: owned by the caller, freed with usagetap_bytes_free.
    [StructLayout(LayoutKind.Sequential)]
    public struct Bytes
    {
        public IntPtr Data;
        public UIntPtr Len;

        public byte[] ToArray() { return Mem.Copy(Data, Len); }
    }

    // usagetap_envelope_info: strings borrowed from the meter until usagetap_meter_free.
    [StructLayout(LayoutKind.Sequential)]
    public struct EnvelopeInfo
    {
        public Str Consumer;
        public Str EventTime;
        public Str ApiOperation;
    }

    // The same fields, in the same order, as usagetap_record in include/usagetap.h.
    [StructLayout(LayoutKind.Sequential)]
    public struct Record
    {
        public ulong PromptTokens;
        public ulong CompletionTokens;
        public ulong TotalTokens;
        public ulong CachedTokens;
        public ulong ReasoningTokens;
        public ulong ImageTokens;
        public ulong ReportedPromptTokens;
        public ulong ReportedCompletionTokens;
        public ulong ReportedTotalTokens;
        public ulong ComputedPromptTokens;
        public ulong ComputedCompletionTokens;
        public long Created;
        public Str Model;
        public Str Deployment;
        public Str ResponseId;
        public Str SystemFingerprint;
        public Str Error;
        public uint Endpoint;
        public uint Status;
        public uint Source;
        public uint Encoding;
        public uint Flags;
        public uint Present;
        public uint Stream;
        public uint ChoiceCount;
        public uint ComputedFlags;
        public uint Reserved;
    }

    public static class Native
    {
        const string Lib = "usagetap";
        public const uint FlagTruncated = 0x2;
        public const uint FlagNoUsageReported = 0x1;

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Str usagetap_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Str usagetap_result_str(uint result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Str usagetap_thread_last_error();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_new(byte[] optionsJson, UIntPtr optionsLen, out IntPtr meter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void usagetap_meter_free(IntPtr meter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_request(IntPtr meter, byte[] body, UIntPtr len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_feed(IntPtr meter, byte[] data, UIntPtr len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_finish(IntPtr meter, out Record record);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_exchange(IntPtr meter, byte[] request, UIntPtr requestLen,
                                                            byte[] response, UIntPtr responseLen, out Record record);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_record(IntPtr meter, out Record record);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_record_json(IntPtr meter, out Str json);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_envelope(byte[] optionsJson, UIntPtr optionsLen, byte[] secret,
                                                            UIntPtr secretLen, byte[] envelope, UIntPtr envelopeLen,
                                                            out IntPtr meter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_meter_envelope_info(IntPtr meter, out EnvelopeInfo info);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_rewrite_include_usage(byte[] body, UIntPtr bodyLen, out Bytes bodyOut,
                                                                   out uint changed, out uint clientAsked);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void usagetap_bytes_free(ref Bytes bytes);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Str usagetap_meter_last_error(IntPtr meter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_count_tokens(byte[] text, UIntPtr textLen, byte[] model, UIntPtr modelLen,
                                                          out ulong count);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Str usagetap_flag_name(uint flag);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_usage_filter_new(UIntPtr maxEventBytes, out IntPtr filter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void usagetap_usage_filter_free(IntPtr filter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_usage_filter_feed(IntPtr filter, byte[] data, UIntPtr len, out Slice output);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_usage_filter_finish(IntPtr filter, out Slice output);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result usagetap_usage_filter_removed(IntPtr filter, out ulong removed);
    }

    // A usage filter as a .NET object: what the client of a gateway receives when the gateway
    // asked the service for usage (usagetap_rewrite_include_usage) and the client had not.
    public sealed class UsageFilter : IDisposable
    {
        IntPtr handle;

        public UsageFilter(int maxEventBytes)
        {
            var r = Native.usagetap_usage_filter_new((UIntPtr)maxEventBytes, out handle);
            if (r != Result.Ok)
                throw new InvalidOperationException(r + ": " + Native.usagetap_thread_last_error());
        }

        static byte[] Check(Result r, Slice output)
        {
            if (r != Result.Ok)
                throw new InvalidOperationException(r + ": " + Native.usagetap_result_str((uint)r));
            // Copied out: the filter's output is valid only until its next call.
            return output.ToArray();
        }

        // Feeds data[offset..offset+count) and returns the bytes to send to the client now.
        byte[] piece = new byte[64];
        public byte[] Feed(byte[] data, int offset, int count)
        {
            Slice output;
            var r = Native.usagetap_usage_filter_feed(handle, Mem.Piece(ref piece, data, offset, count), (UIntPtr)count,
                                                      out output);
            return Check(r, output);
        }

        // Ends the stream: the bytes the filter still held.
        public byte[] Finish()
        {
            Slice output;
            return Check(Native.usagetap_usage_filter_finish(handle, out output), output);
        }

        public ulong Removed()
        {
            ulong n;
            var r = Native.usagetap_usage_filter_removed(handle, out n);
            if (r != Result.Ok) throw new InvalidOperationException(r.ToString());
            return n;
        }

        public IntPtr Raw { get { return handle; } }

        public void Dispose()
        {
            Native.usagetap_usage_filter_free(handle);
            handle = IntPtr.Zero;
        }
    }

    // A meter as a .NET object: SafeHandle-style ownership kept short for the example.
    public sealed class Meter : IDisposable
    {
        IntPtr handle;

        public Meter(string optionsJson)
        {
            byte[] opts = optionsJson == null ? null : Encoding.UTF8.GetBytes(optionsJson);
            var r = Native.usagetap_meter_new(opts, (UIntPtr)(opts == null ? 0 : opts.Length), out handle);
            if (r != Result.Ok)
                throw new InvalidOperationException(r + ": " + Native.usagetap_thread_last_error());
        }

        Meter(IntPtr h) { handle = h; }

        // A finished meter for one APIM Event Hub message (the bytes as received, possibly cut).
        public static Meter FromEnvelope(byte[] envelope, int length, byte[] secret)
        {
            byte[] env = envelope;
            if (length != envelope.Length)
            {
                env = new byte[length];
                Buffer.BlockCopy(envelope, 0, env, 0, length);
            }
            IntPtr h;
            var r = Native.usagetap_meter_envelope(null, UIntPtr.Zero, secret, (UIntPtr)secret.Length, env,
                                                   (UIntPtr)env.Length, out h);
            if (r != Result.Ok)
                throw new InvalidOperationException(r + ": " + Native.usagetap_thread_last_error());
            return new Meter(h);
        }

        public Record Record()
        {
            Record rec;
            Check(Native.usagetap_meter_record(handle, out rec));
            return rec;
        }

        public EnvelopeInfo Envelope()
        {
            EnvelopeInfo info;
            Check(Native.usagetap_meter_envelope_info(handle, out info));
            return info;
        }

        Result Check(Result r)
        {
            if (r != Result.Ok && r != Result.InvalidRequest && r != Result.InvalidJson)
                throw new InvalidOperationException(r + ": " + Native.usagetap_meter_last_error(handle));
            return r;
        }

        public Result Request(byte[] body) { return Check(Native.usagetap_meter_request(handle, body, (UIntPtr)body.Length)); }

        // Feeds data[offset..offset+count).
        byte[] piece = new byte[64];
        public void Feed(byte[] data, int offset, int count)
        {
            Check(Native.usagetap_meter_feed(handle, Mem.Piece(ref piece, data, offset, count), (UIntPtr)count));
        }

        public Record Finish()
        {
            Record rec;
            Check(Native.usagetap_meter_finish(handle, out rec));
            return rec;
        }

        public Record Exchange(byte[] request, byte[] response)
        {
            Record rec;
            Check(Native.usagetap_meter_exchange(handle, request, (UIntPtr)request.Length, response,
                                                 (UIntPtr)response.Length, out rec));
            return rec;
        }

        public string Json()
        {
            Str s;
            Check(Native.usagetap_meter_record_json(handle, out s));
            return s.ToString();
        }

        public IntPtr Raw { get { return handle; } }

        public void Dispose()
        {
            Native.usagetap_meter_free(handle);
            handle = IntPtr.Zero;
        }
    }

    public static class Host
    {
        static int passed, failed;

        static void Check(bool ok, string what)
        {
            if (ok) { passed++; return; }
            failed++;
            Console.Error.WriteLine("FAIL " + what);
        }

        // --- a JSON string reader just big enough for an APIM envelope --------------------------

        // The value of a top-level string field, decoded; null when absent.
        static string StringField(string json, string name)
        {
            int i = FieldValue(json, name);
            if (i < 0 || json[i] != '"') return null;
            var sb = new StringBuilder();
            for (i++; i < json.Length; i++)
            {
                char c = json[i];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                char e = json[++i];
                switch (e)
                {
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'u':
                        sb.Append((char)Convert.ToInt32(json.Substring(i + 1, 4), 16)); // surrogates pair up
                        i += 4;
                        break;
                    default: sb.Append(e); break; // \" \\ \/
                }
            }
            throw new FormatException("unterminated string in field " + name);
        }

        // The numbers of a top-level array field of integers.
        static long[] NumbersField(string json, string name)
        {
            int i = FieldValue(json, name);
            int end = json.IndexOf(']', i);
            var parts = json.Substring(i + 1, end - i - 1).Split(',');
            var nums = new long[parts.Length];
            for (int k = 0; k < parts.Length; k++) nums[k] = long.Parse(parts[k].Trim());
            return nums;
        }

        // Index of the value of top-level field `name` (string values are skipped while looking).
        static int FieldValue(string json, string name)
        {
            string key = "\"" + name + "\"";
            int depth = 0;
            for (int i = 0; i < json.Length; i++)
            {
                char c = json[i];
                if (c == '{' || c == '[') depth++;
                else if (c == '}' || c == ']') depth--;
                else if (c == '"')
                {
                    if (depth == 1 && string.CompareOrdinal(json, i, key, 0, key.Length) == 0)
                    {
                        int j = i + key.Length;
                        while (char.IsWhiteSpace(json[j])) j++;
                        if (json[j] == ':')
                        {
                            j++;
                            while (char.IsWhiteSpace(json[j])) j++;
                            return j;
                        }
                    }
                    for (i++; json[i] != '"'; i++) if (json[i] == '\\') i++;
                }
            }
            return -1;
        }

        // --- the recorded streams ---------------------------------------------------------------

        // One case of a corpus_cases.py file: its header's fields, then its two blobs, whose
        // lengths end the header in every kind of case.
        sealed class Case
        {
            public string[] Fields;
            public byte[] First, Second;
        }

        static IEnumerable<Case> Cases(string path)
        {
            using (var f = File.OpenRead(path))
            {
                while (true)
                {
                    string header = ReadLine(f);
                    if (header == null) yield break;
                    var p = header.Split(' ');
                    var c = new Case { Fields = p };
                    c.First = ReadExactly(f, int.Parse(p[p.Length - 2]));
                    c.Second = ReadExactly(f, int.Parse(p[p.Length - 1]));
                    ReadExactly(f, 1);
                    yield return c;
                }
            }
        }

        static int MeterCases(string path)
        {
            int matched = 0;
            var rng = new Random(7);
            foreach (var c in Cases(path))
            {
                var p = c.Fields;
                string id = p[1];
                bool stream = p[2] == "1";
                long prompt = long.Parse(p[3]), completion = long.Parse(p[4]), total = long.Parse(p[5]);
                byte[] request = c.First, response = c.Second;
                if (!stream || prompt < 0) continue;

                using (var m = new Meter(null))
                {
                    Check(m.Request(request) == Result.Ok, id + ": request");
                    for (int at = 0; at < response.Length;)
                    {
                        int n = Math.Min(1 + rng.Next(64), response.Length - at);
                        m.Feed(response, at, n);
                        at += n;
                    }
                    Record rec = m.Finish();
                    bool ok = (long)rec.PromptTokens == prompt
                              && (completion < 0 || (long)rec.CompletionTokens == completion)
                              && (total < 0 || (long)rec.TotalTokens == total);
                    Check(ok, string.Format("{0}: got {1}/{2}/{3}, reported {4}/{5}/{6}", id, rec.PromptTokens,
                                            rec.CompletionTokens, rec.TotalTokens, prompt, completion, total));
                    Check(rec.Source == (uint)Source.Reported && rec.Stream == 1, id + ": source/stream");
                    Check(rec.Model.ToString().Length > 0, id + ": model");
                    Check(m.Json().Contains("\"prompt_tokens\":" + rec.PromptTokens + ","), id + ": json");
                    if (ok) matched++;
                }
            }
            return matched;
        }

        // The `filter` cases of the chargeback file: the service's stream goes to a meter and
        // through a usage filter in the same random pieces; the client's bytes must equal the
        // stream without its usage chunk (computed by corpus_cases.py from the parsed events).
        static int FilterCases(string path)
        {
            int matched = 0;
            var rng = new Random(11);
            foreach (var c in Cases(path))
            {
                if (c.Fields[0] != "filter") continue;
                string id = "filter " + c.Fields[1];
                ulong wantRemoved = ulong.Parse(c.Fields[2]);
                byte[] input = c.First, want = c.Second;

                var got = new MemoryStream();
                using (var filter = new UsageFilter(0))
                using (var m = new Meter(null))
                {
                    for (int at = 0; at < input.Length;)
                    {
                        int n = Math.Min(1 + rng.Next(64), input.Length - at);
                        byte[] output = filter.Feed(input, at, n);
                        got.Write(output, 0, output.Length);
                        m.Feed(input, at, n);
                        at += n;
                    }
                    byte[] rest = filter.Finish();
                    got.Write(rest, 0, rest.Length);
                    bool same = SameBytes(got.ToArray(), want);
                    Check(same, string.Format("{0}: filtered stream differs ({1} bytes, want {2})", id,
                                              got.Length, want.Length));
                    Check(filter.Removed() == wantRemoved, id + ": removed " + filter.Removed());
                    Slice s;
                    Check(Native.usagetap_usage_filter_feed(filter.Raw, input, (UIntPtr)1, out s) == Result.Finished,
                          id + ": feed after finish");
                    Record rec = m.Finish();
                    Check(rec.Source == (uint)Source.Reported,
                          id + ": the meter reads the usage the client does not see");
                    if (same && rec.Source == (uint)Source.Reported) matched++;
                }
            }
            return matched;
        }

        static bool SameBytes(byte[] a, byte[] b)
        {
            if (a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++)
                if (a[i] != b[i]) return false;
            return true;
        }

        static string ReadLine(Stream f)
        {
            var bytes = new List<byte>();
            int b;
            while ((b = f.ReadByte()) >= 0 && b != '\n') bytes.Add((byte)b);
            if (b < 0 && bytes.Count == 0) return null;
            return Encoding.UTF8.GetString(bytes.ToArray());
        }

        static byte[] ReadExactly(Stream f, int n)
        {
            var buf = new byte[n];
            int got = 0;
            while (got < n)
            {
                int k = f.Read(buf, got, n - got);
                if (k <= 0) throw new EndOfStreamException();
                got += k;
            }
            return buf;
        }

        // --- APIM events ------------------------------------------------------------------------

        // The consumer-hash secret: an app setting in a real host, never written anywhere.
        static readonly byte[] Secret = Encoding.UTF8.GetBytes("usagetap-csharp-example-secret");

        static int MeterApimEvents(string path)
        {
            int matched = 0;
            var ids = new Dictionary<string, string>();
            foreach (string line in File.ReadAllLines(path, Encoding.UTF8))
            {
                if (line.Trim().Length == 0) continue;
                string op = StringField(line, "apiOperation");
                string key = StringField(line, "appSubscriptionKey");
                long[] want = NumbersField(line, "expected");
                // The message as Event Hub delivers it (the extra "expected" field is ignored).
                byte[] message = Encoding.UTF8.GetBytes(line);
                using (var m = Meter.FromEnvelope(message, message.Length, Secret))
                {
                    Record rec = m.Record();
                    EnvelopeInfo info = m.Envelope();
                    string consumer = info.Consumer.ToString();
                    bool ok = (long)rec.PromptTokens == want[0]
                              && (want[1] < 0 || (long)rec.CompletionTokens == want[1])
                              && (want[2] < 0 || (long)rec.TotalTokens == want[2]);
                    Check(ok, string.Format("APIM {0}: got {1}/{2}/{3}, reported {4}/{5}/{6}", op,
                                            rec.PromptTokens, rec.CompletionTokens, rec.TotalTokens,
                                            want[0], want[1], want[2]));
                    Check(consumer.Length == 32 && !consumer.Contains(key) && !m.Json().Contains(key),
                          "APIM " + op + ": consumer id " + consumer);
                    Check(info.ApiOperation.ToString() == op && info.EventTime.ToString() == StringField(line, "eventTime"),
                          "APIM " + op + ": eventTime/apiOperation");
                    Check(!ids.ContainsKey(consumer) || ids[consumer] == key, "APIM: two keys, one id");
                    ids[consumer] = key;
                    if (ok) matched++;
                    // A chargeback line, as a Functions host would write it: the consumer id, never the key.
                    Console.WriteLine("chargeback {0} {1} {2} model={3} prompt={4} completion={5} total={6} source={7}",
                                      info.EventTime, consumer, op, rec.Model, rec.PromptTokens, rec.CompletionTokens,
                                      rec.TotalTokens, (Source)rec.Source);
                }
                // APIM cuts messages over 200 KB: a cut message still gives a record, flagged.
                using (var m = Meter.FromEnvelope(message, message.Length * 2 / 3, Secret))
                {
                    Record rec = m.Record();
                    Check((rec.Flags & Native.FlagTruncated) != 0, "APIM " + op + ": cut message not flagged");
                    Check(m.Envelope().Consumer.ToString().Length == 32, "APIM " + op + ": cut message consumer");
                }
            }
            return matched;
        }

        // --- the rest of the surface ------------------------------------------------------------

        static void Misuse()
        {
            string v = Native.usagetap_version().ToString();
            Check(v.Split('.').Length == 3, "version " + v);
            Check(Native.usagetap_result_str((uint)Result.Finished).ToString().Contains("finished"), "result_str");
            Record rec;
            Check(Native.usagetap_meter_finish(IntPtr.Zero, out rec) == Result.NullParameter, "NULL meter");
            Native.usagetap_meter_free(IntPtr.Zero);
            IntPtr h;
            byte[] typo = Encoding.UTF8.GetBytes("{\"modle\":1}");
            Check(Native.usagetap_meter_new(typo, (UIntPtr)typo.Length, out h) == Result.InvalidOptions, "options typo");
            Check(Native.usagetap_thread_last_error().ToString().Contains("modle"), "options message");

            using (var m = new Meter(null))
            {
                byte[] cut = Encoding.UTF8.GetBytes(
                    "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel");
                m.Feed(cut, 0, cut.Length);
                rec = m.Finish();
                Check(rec.Status == (uint)Status.Truncated && (rec.Flags & Native.FlagTruncated) != 0, "truncated");
                byte[] more = { (byte)'x' };
                Check(Native.usagetap_meter_feed(m.Raw, more, (UIntPtr)1) == Result.Finished, "feed after finish");
                Check(Native.usagetap_meter_last_error(m.Raw).ToString().Contains("finished"), "last error");
            }

            // The request rewrite a gateway applies before forwarding a streaming request.
            byte[] req = Encoding.UTF8.GetBytes("{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[]}");
            Bytes body;
            uint changed, asked;
            Check(Native.usagetap_rewrite_include_usage(req, (UIntPtr)req.Length, out body, out changed, out asked) == Result.Ok
                  && changed == 1 && asked == 0, "rewrite");
            string rewritten = Encoding.UTF8.GetString(body.ToArray());
            Native.usagetap_bytes_free(ref body);
            Check(body.Data == IntPtr.Zero && rewritten ==
                  "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[],\"stream_options\":{\"include_usage\":true}}",
                  "rewritten " + rewritten);
            using (var m = new Meter(null))
            {
                EnvelopeInfo info;
                Check(Native.usagetap_meter_envelope_info(m.Raw, out info) == Result.NotAnEnvelope, "not an envelope");
            }
            byte[] bad = Encoding.UTF8.GetBytes("not json");
            Check(Native.usagetap_meter_envelope(null, UIntPtr.Zero, Secret, (UIntPtr)Secret.Length, bad,
                                                 (UIntPtr)bad.Length, out h) == Result.InvalidJson, "envelope not JSON");

            ulong count;
            byte[] text = Encoding.UTF8.GetBytes("hello world");
            byte[] model = Encoding.UTF8.GetBytes("gpt-4o");
            Check(Native.usagetap_count_tokens(text, (UIntPtr)text.Length, model, (UIntPtr)model.Length, out count) == Result.Ok
                  && count == 2, "count_tokens " );

            Check(Native.usagetap_flag_name(Native.FlagTruncated).ToString() == "truncated", "flag_name");
            Check(Native.usagetap_flag_name(Native.FlagTruncated | Native.FlagNoUsageReported).Len == UIntPtr.Zero,
                  "flag_name of two bits");
            Slice slice;
            ulong removed;
            Check(Native.usagetap_usage_filter_new(UIntPtr.Zero, out h) == Result.Ok && h != IntPtr.Zero, "filter_new");
            Check(Native.usagetap_usage_filter_feed(h, null, (UIntPtr)3, out slice) == Result.NullParameter,
                  "filter feed (NULL, 3)");
            Check(Native.usagetap_usage_filter_feed(h, null, UIntPtr.Zero, out slice) == Result.Ok
                  && slice.Len == UIntPtr.Zero, "filter feed (NULL, 0)");
            Check(Native.usagetap_usage_filter_finish(h, out slice) == Result.Ok && slice.Len == UIntPtr.Zero,
                  "filter finish");
            Check(Native.usagetap_usage_filter_finish(h, out slice) == Result.Finished, "filter finish twice");
            Check(Native.usagetap_usage_filter_removed(h, out removed) == Result.Ok && removed == 0, "filter removed");
            Native.usagetap_usage_filter_free(h);
            Native.usagetap_usage_filter_free(IntPtr.Zero);
            Check(Native.usagetap_usage_filter_removed(IntPtr.Zero, out removed) == Result.NullParameter,
                  "filter removed NULL");
        }

        public static int Main(string[] args)
        {
            if (args.Length != 2 && args.Length != 3)
            {
                Console.Error.WriteLine("usage: UsagetapHost.exe CASES_FILE APIM_FILE [CHARGEBACK_FILE]");
                return 2;
            }
            Console.WriteLine("usagetap " + Native.usagetap_version() + " from C#, record struct " +
                              Marshal.SizeOf(typeof(Record)) + " bytes");
            Misuse();
            int streams = MeterCases(args[0]);
            int events = MeterApimEvents(args[1]);
            Console.WriteLine("csharp: {0} recorded streams and {1} APIM events matched the reported usage", streams, events);
            Check(streams >= 30 && events >= 3, "enough cases");
            if (args.Length == 3)
            {
                int filtered = FilterCases(args[2]);
                Console.WriteLine("csharp: {0} recorded streams filtered for a client that did not ask for usage", filtered);
                Check(filtered >= 2, "enough filter cases");
            }
            Console.WriteLine("csharp: {0} passed, {1} failed", passed, failed);
            return failed == 0 ? 0 : 1;
        }
    }
}
