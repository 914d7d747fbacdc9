using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Tests.Support;
using CsCheck;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// Property tests over everything the request side parses from outside: the bodies of both inference endpoints
/// (random JSON, mutated valid bodies, random bytes, bad UTF-8, surrogate escapes, deep nesting, huge numbers, wrong
/// types, repeated keys, other Content-Types) and the <c>Authorization</c> / <c>api-key</c> headers. Whatever comes
/// in: never a 5xx, every error in OpenAI's shape with a bounded message, and no router call for a refused request.
/// Iteration counts are fixed so a run takes seconds; a failure prints CsCheck's seed (rerun with
/// <c>CsCheck_Seed=&lt;seed&gt;</c>) and the shrunk input.
/// </summary>
public sealed class RequestFuzzTests : GatewayTestBase
{
    private const int HttpIterations = 1500;
    private const int UnitIterations = 10_000;

    private static readonly string[] ParamNames =
    [
        "model", "messages", "prompt", "role", "content", "name", "tool_call_id", "type", "text", "stream", "stream_options",
        "include_usage", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "n", "best_of", "stop",
        "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "tools", "tool_choice", "functions",
        "response_format", "logit_bias", "echo", "suffix", "user", "metadata", "seed",
    ];

    /// <summary>A char as JSON writes it: quotes, backslashes, controls and surrogate halves as escapes.</summary>
    private static string Quote(string text)
    {
        var json = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            if (c is '"' or '\\')
            {
                json.Append('\\').Append(c);
            }
            else if (c < 0x20 || char.IsSurrogate(c))
            {
                json.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            }
            else
            {
                json.Append(c);
            }
        }

        return json.Append('"').ToString();
    }

    private static readonly Gen<string> StringToken = Gen.Frequency(
        (4, Gen.OneOf("m1", "nope", "m-disabled", "user", "system", "assistant", "tool", "developer", "function", "wizard",
            "text", "image_url", "none", "auto", "json_object", "json_schema", "", " ").Select(Quote)),
        (3, Gen.String[Gen.Char, 0, 12].Select(Quote)), // any UTF-16 units, lone surrogates included
        (2, Gen.OneOf(@"""\ud800""", @"""a\udc00""", @"""\ud83d\ude00""", @"""\u0000""", @"""\ud800\ud800""", @"""\udbff\udfff""", @"""\ud83d\u0041""", "\"😀é\"")),
        (1, Gen.Int[200, 1200].Select(n => Quote(new string('x', n)))));

    private static readonly Gen<string> NumberToken = Gen.Frequency(
        (3, Gen.OneOf("0", "-0", "1", "2", "-1", "1.5", "0.5", "4", "5", "100", "101", "128", "129", "1000", "1001", "3.0", "1E2", "1e-400",
            "1e400", "-1e400", "99999999999999999999", "-99999999999999999999", "2147483648", "-2147483649", "1.7976931348623157e309")),
        (2, Gen.Int.Select(i => i.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.Double.Where(double.IsFinite).Select(d => d.ToString("R", CultureInfo.InvariantCulture))));

    private static readonly Gen<string> Scalar = Gen.Frequency(
        (4, StringToken), (3, NumberToken), (1, Gen.OneOf("true", "false", "null")));

    private static readonly Gen<string> KeyToken = Gen.Frequency((5, Gen.OneOf(ParamNames).Select(Quote)), (1, StringToken));

    private static string Object(IEnumerable<(string Key, string Value)> fields) => "{" + string.Join(",", fields.Select(f => f.Key + ":" + f.Value)) + "}";

    private static readonly Gen<string> AnyValue = Gen.Recursive<string>((depth, value) => depth >= 4
        ? Scalar
        : Gen.Frequency(
            (6, Scalar),
            (2, value.Array[0, 4].Select(items => "[" + string.Join(",", items) + "]")),
            (2, Gen.Select(KeyToken, value).Array[0, 5].Select(fields => Object(fields)))));

    private static readonly Gen<string> Message = Gen.Select(
            Gen.Frequency((6, Gen.OneOf("user", "system", "assistant", "developer").Select(Quote)), (2, Gen.OneOf("tool", "function", "wizard").Select(Quote)), (1, AnyValue)),
            Gen.Frequency(
                (5, StringToken),
                (2, Gen.Select(Gen.Frequency((3, Gen.Const(Quote("text"))), (1, StringToken)), StringToken)
                    .Select((type, text) => Object([(Quote("type"), type), (Quote("text"), text)])).Array[0, 3]
                    .Select(parts => "[" + string.Join(",", parts) + "]")),
                (2, AnyValue)),
            Gen.Frequency((4, Gen.Const(Array.Empty<(string, string)>())), (1, Gen.Select(KeyToken, AnyValue).Array[1, 2])))
        .Select((role, content, extra) => Object([(Quote("role"), role), (Quote("content"), content), .. extra]));

    private static Gen<string> Decimal(double min, double max) => Gen.Double[min, max].Select(d => Math.Round(d, 2).ToString("R", CultureInfo.InvariantCulture));

    /// <summary>Known params with values of the right type, in and out of range, so requests get past parsing into validation.</summary>
    private static readonly Gen<(string Key, string Value)> TypedParam = Gen.OneOf<(string Key, string Value)>(
        Gen.Int[-5, 150].Select(i => (Quote("max_tokens"), i.ToString(CultureInfo.InvariantCulture))),
        Gen.Int[-5, 150].Select(i => (Quote("max_completion_tokens"), i.ToString(CultureInfo.InvariantCulture))),
        Decimal(-1, 3).Select(d => (Quote("temperature"), d)),
        Decimal(-0.5, 1.5).Select(d => (Quote("top_p"), d)),
        Gen.Int[-2, 1100].Select(i => (Quote("top_k"), i.ToString(CultureInfo.InvariantCulture))),
        Gen.Int[-1, 3].Select(i => (Quote("n"), i.ToString(CultureInfo.InvariantCulture))),
        Decimal(-3, 3).Select(d => (Quote("presence_penalty"), d)),
        Decimal(-3, 3).Select(d => (Quote("frequency_penalty"), d)),
        Gen.OneOf("true", "false").Select(b => (Quote("stream"), b)),
        Gen.OneOf("true", "false").Select(b => (Quote("stream_options"), "{\"include_usage\":" + b + "}")),
        Gen.Frequency((2, StringToken), (2, StringToken.Array[0, 6].Select(a => "[" + string.Join(",", a) + "]"))).Select(v => (Quote("stop"), v)),
        Gen.OneOf("true", "false", "1", "6").Select(v => (Quote("logprobs"), v)),
        Gen.Int[0, 3].Select(i => (Quote("top_logprobs"), i.ToString(CultureInfo.InvariantCulture))),
        Gen.OneOf("[]", "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]").Select(v => (Quote("tools"), v)),
        Gen.OneOf("\"none\"", "\"auto\"", "{}").Select(v => (Quote("tool_choice"), v)),
        Gen.OneOf("{\"type\":\"text\"}", "{\"type\":\"json_object\"}", "{}", "\"text\"").Select(v => (Quote("response_format"), v)),
        Gen.OneOf("{}", "{\"50256\":-100}").Select(v => (Quote("logit_bias"), v)),
        Gen.Int[0, 3].Select(i => (Quote("best_of"), i.ToString(CultureInfo.InvariantCulture))),
        Gen.OneOf("true", "false").Select(b => (Quote("echo"), b)),
        StringToken.Select(v => (Quote("suffix"), v)),
        StringToken.Select(v => (Quote("user"), v)),
        Gen.Int.Select(i => (Quote("seed"), i.ToString(CultureInfo.InvariantCulture))));

    private static readonly Gen<(string Key, string Value)> ExtraParam = Gen.Frequency(
        (4, TypedParam), (1, Gen.Select(KeyToken, AnyValue).Select((k, v) => (k, v))));

    /// <summary>Valid-looking requests with wrong types, ranges, unknown and repeated fields mixed in.</summary>
    private static readonly Gen<(string Path, string Body)> StructuredRequest = Gen.Select(
            Gen.Bool,
            Gen.Frequency((6, Gen.Const(Quote("m1"))), (2, StringToken), (1, AnyValue)),
            Gen.Frequency((5, Message.Array[1, 3].Select(m => "[" + string.Join(",", m) + "]")), (1, AnyValue)),
            Gen.Frequency((5, StringToken), (1, AnyValue)),
            ExtraParam.Array[0, 4],
            Gen.Int[0, 9])
        .Select((chat, model, messages, prompt, extra, repeat) =>
        {
            List<(string, string)> fields = [(Quote("model"), model), chat ? (Quote("messages"), messages) : (Quote("prompt"), prompt), .. extra];
            if (repeat == 0)
            {
                fields.Add(fields[0]); // a repeated key
            }

            return (chat ? "/v1/chat/completions" : "/v1/completions", Object(fields));
        });

    private static readonly string[] ValidBodies =
    [
        Http.Chat(),
        """{"model":"m1","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":5,"temperature":0.2,"stop":["\n"],"stream":true,"stream_options":{"include_usage":true}}""",
        """{"model":"m1","prompt":"Once upon","max_tokens":4,"top_p":0.9,"stop":"."}""",
    ];

    /// <summary>A valid body with 1–4 byte-level edits: flips, deletions, insertions, 0xFF bytes, truncation, duplication.</summary>
    private static readonly Gen<(string Path, byte[] Body)> MutatedRequest = Gen.Select(
            Gen.Int[0, ValidBodies.Length - 1],
            Gen.Select(Gen.Int[0, 5], Gen.Int[0, 10_000], Gen.Byte).Array[1, 4])
        .Select((index, edits) =>
        {
            var body = new List<byte>(Encoding.UTF8.GetBytes(ValidBodies[index]));
            foreach (var (op, at, value) in edits)
            {
                var i = body.Count == 0 ? 0 : at % body.Count;
                switch (op)
                {
                    case 0 when body.Count > 0: body[i] = value; break;
                    case 1 when body.Count > 0: body.RemoveRange(i, Math.Min(1 + value % 8, body.Count - i)); break;
                    case 2: body.Insert(i, value); break;
                    case 3: body.InsertRange(i, [0xFF, 0xFE]); break;
                    case 4: body.RemoveRange(i, body.Count - i); break;
                    case 5 when body.Count > 0: body.InsertRange(i, body.GetRange(i, Math.Min(1 + value % 16, body.Count - i))); break;
                }
            }

            return (index == 2 ? "/v1/completions" : "/v1/chat/completions", body.ToArray());
        });

    private static readonly Gen<string> Path = Gen.OneOf("/v1/chat/completions", "/v1/completions");

    private static readonly Gen<(string Path, byte[] Body)> AnyBody = Gen.Frequency(
        (7, StructuredRequest.Select(r => (r.Path, Encoding.UTF8.GetBytes(r.Body)))),
        (4, MutatedRequest),
        (2, Gen.Select(Path, AnyValue).Select((p, v) => (p, Encoding.UTF8.GetBytes(v)))),
        (1, Gen.Select(Path, Gen.Byte.Array[0, 300])),
        (1, Gen.Select(Path, Gen.Int[1, 1500], Gen.Bool).Select((p, n, arrays) => (p, Encoding.UTF8.GetBytes(arrays
            ? """{"model":"m1","messages":""" + new string('[', n) + new string(']', n) + "}"
            : """{"model":"m1","prompt":"x","metadata":""" + string.Concat(Enumerable.Repeat("""{"a":""", n % 700)) + "1" + new string('}', n % 700) + "}")))));

    private static readonly Gen<string?> ContentType = Gen.Frequency(
        (20, Gen.Const<string?>("application/json")),
        (1, Gen.OneOf<string?>(null, "text/plain", "application/json; charset=utf-16", "application/x-www-form-urlencoded", "application/vnd.x+json", "APPLICATION/JSON; charset=\"UTF-8\"", ";;", "application/json; charset")));

    private static string Show(byte[] body) => string.Concat(body.Select(b => b is >= 0x20 and < 0x7F ? ((char)b).ToString() : $"\\x{b:X2}"));

    /// <summary>Sends one request and checks the properties every answer must have.</summary>
    private async Task SendAndCheckAsync(string path, byte[] body, string? contentType, Action<HttpRequestMessage> authenticate)
    {
        var routerCallsBefore = Host.Router.Calls;
        using var content = new ByteArrayContent(body);
        if (contentType is not null)
        {
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        authenticate(request);
        using var response = await Host.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var status = (int)response.StatusCode;

        Assert.True(status < 500, $"{status} for bad client input: {text}");
        if (status < 400)
        {
            return;
        }

        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(text);
        var error = json.RootElement.GetProperty("error");
        var message = error.GetProperty("message").GetString();
        Assert.False(string.IsNullOrEmpty(message));
        if (message!.Length >= 1000)
        {
            Assert.Fail($"{message.Length}-char message echoes too much: {message[..200]}…");
        }

        Assert.False(string.IsNullOrEmpty(error.GetProperty("type").GetString()));
        Assert.True(error.GetProperty("code").ValueKind is JsonValueKind.String or JsonValueKind.Null);
        Assert.True(error.GetProperty("param").ValueKind is JsonValueKind.String or JsonValueKind.Null);
        Assert.Equal(response.Headers.GetValues("X-Request-Id").Single(), error.GetProperty("request_id").GetString());
        Assert.Equal(routerCallsBefore, Host.Router.Calls); // a refused request reached no router
    }

    [Fact]
    public async Task AnyRequestBody_NeverA5xx_AlwaysOpenAIErrorShape()
    {
        await Gen.Select(AnyBody, ContentType).SampleAsync(
            async (request, contentType) =>
            {
                await SendAndCheckAsync(request.Path, request.Body, contentType, r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key));
            },
            iter: HttpIterations,
            threads: 1, // router-call accounting per request needs one request at a time
            print: t => $"POST {t.Item1.Path} Content-Type: {t.Item2 ?? "(none)"} body: {Show(t.Item1.Body)}");
    }

    private static readonly Gen<string> HeaderText = Gen.String[Gen.Char.Where(c => c is not ('\r' or '\n' or '\0')), 0, 60];

    [Fact]
    public async Task AnyAuthorizationHeader_NeverA5xx_AlwaysOpenAIErrorShape()
    {
        // Key-shaped values (the real key edited), other schemes, random text and very long values, in either header.
        var header = Gen.Frequency(
            (3, Gen.Select(Gen.Int[0, 200], Gen.Char.Where(c => c is not ('\r' or '\n' or '\0')), Gen.Int[0, 2]).Select((at, c, op) => (Func<string, string>)(key =>
            {
                var i = at % key.Length;
                return "Bearer " + (op switch { 0 => key.Remove(i, 1), 1 => key.Insert(i, c.ToString()), _ => key[..i] + c + key[(i + 1)..] });
            }))),
            (2, Gen.Select(Gen.OneOf("Bearer ", "bearer  ", "BEARER\t", "Basic ", "Bearer", "Token ", "", " "), HeaderText).Select((scheme, text) => (Func<string, string>)(_ => scheme + text))),
            (1, Gen.Int[1, 9000].Select(n => (Func<string, string>)(_ => "Bearer pk_test_" + new string('a', n)))),
            (1, Gen.Const((Func<string, string>)(key => "Bearer " + key + " " + key))));

        await Gen.Select(header, Gen.Bool, Gen.Bool).SampleAsync(
            async (make, apiKeyHeader, completions) =>
            {
                var value = make(Key);
                await SendAndCheckAsync(
                    completions ? "/v1/completions" : "/v1/chat/completions",
                    Encoding.UTF8.GetBytes(completions ? """{"model":"m1","prompt":"hi"}""" : Http.Chat()),
                    "application/json",
                    r =>
                    {
                        if (apiKeyHeader)
                        {
                            r.Headers.TryAddWithoutValidation("api-key", value.StartsWith("Bearer ", StringComparison.Ordinal) ? value[7..] : value);
                        }
                        else
                        {
                            r.Headers.TryAddWithoutValidation("Authorization", value);
                        }
                    });
            },
            iter: HttpIterations / 2,
            threads: 1,
            print: t => $"{(t.Item2 ? "api-key" : "Authorization")}: {t.Item1(Key)}");
    }

    /// <summary>
    /// The string check against an oracle: a string written with <c>\uXXXX</c> escapes for every surrogate half is
    /// invalid exactly when strict UTF-16 → UTF-8 conversion fails; raw bytes exactly when strict UTF-8 decoding fails.
    /// </summary>
    [Fact]
    public void JsonTextCheck_AgreesWithStrictEncoders()
    {
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

        Gen.String[Gen.Frequency((3, Gen.Char), (1, Gen.Char['\uD7FF', '\uE000'])), 0, 8].Sample(
            text =>
            {
                bool expectedValid;
                try
                {
                    strict.GetBytes(text);
                    expectedValid = true;
                }
                catch (EncoderFallbackException)
                {
                    expectedValid = false;
                }

                var json = Encoding.UTF8.GetBytes("""{"a":[1,{"b":""" + Quote(text) + "}]}");
                Assert.Equal(!expectedValid, JsonTextCheck.HasInvalidString(json, out var param));
                Assert.Equal(expectedValid ? null : "a[1].b", param);
            },
            iter: UnitIterations,
            print: t => Quote(t));

        Gen.Byte.Where(b => b >= 0x20 && b != '"' && b != '\\').Array[0, 8].Sample(
            bytes =>
            {
                bool expectedValid;
                try
                {
                    strict.GetString(bytes);
                    expectedValid = true;
                }
                catch (DecoderFallbackException)
                {
                    expectedValid = false;
                }

                byte[] json = [.. "{\"k\":\""u8, .. bytes, .. "\"}"u8];
                Assert.Equal(!expectedValid, JsonTextCheck.HasInvalidString(json, out var param));
                Assert.Equal(expectedValid ? null : "k", param);
            },
            iter: UnitIterations,
            print: Show);
    }

    /// <summary>
    /// What the OpenAI SDKs send: System.Text.Json's default encoder (the .NET SDK) escapes non-ASCII and
    /// <c>'&lt;&gt;&amp;+</c>, Python's <c>ensure_ascii</c> escapes all non-ASCII. Those escapes can never be invalid,
    /// so such bodies must pass on the fast path, without a second parse.
    /// </summary>
    [Theory]
    [InlineData(@"It\u0027s \u003Cb\u003Ecaf\u00E9\u003C/b\u003E \u0026 1\u002B1")]
    [InlineData(@"\u65e5\u672c\u8a9e \u00fc\u00f1\u00ee \u20ac\ufffd\ud7ff\ue000")]
    [InlineData(@"C:\\users\\u\u00e9")]
    public void JsonTextCheck_EscapesOtherThanSurrogates_StayOnTheFastPath(string escaped)
    {
        var json = Encoding.UTF8.GetBytes("{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"" + escaped + "\"}]}");

        Assert.False(JsonTextCheck.NeedsWalk(json));
        Assert.False(JsonTextCheck.HasInvalidString(json, out _));
    }

    [Fact]
    public void JsonTextCheck_TheDotNetSdksEncoding_StaysOnTheFastPath()
    {
        // The OpenAI .NET SDK writes with System.Text.Json's default encoder, as this does.
        var json = JsonSerializer.SerializeToUtf8Bytes(new { model = "m1", content = "It's <b>café</b> & 1+1, 日本語 €" });

        Assert.True(json.AsSpan().IndexOf(@"\u"u8) >= 0, "the encoder escaped nothing; the case proves nothing");
        Assert.False(JsonTextCheck.NeedsWalk(json));
    }

    [Theory]
    [InlineData(@"\ud800", false)]
    [InlineData(@"a\uDFFFb", false)]
    [InlineData(@"\uD83D\u0041", false)]
    [InlineData(@"\udbff", false)]
    [InlineData(@"\ud83d\ude00", true)]
    [InlineData(@"\\ud800", true)]
    public void JsonTextCheck_PossibleSurrogateEscapes_AreWalked(string escaped, bool valid)
    {
        var json = Encoding.UTF8.GetBytes("{\"m\":[{\"content\":\"" + escaped + "\"}]}");

        Assert.True(JsonTextCheck.NeedsWalk(json));
        Assert.Equal(!valid, JsonTextCheck.HasInvalidString(json, out var param));
        Assert.Equal(valid ? null : "m[0].content", param);
    }
}
