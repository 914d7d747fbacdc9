using System.Net.Sockets;
using System.Text;

namespace Cortensor.Portal.Gateway.Tests.Support;

/// <summary>A response read off a raw socket: status, headers (lower-case names) and the de-chunked body.</summary>
internal sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body);

/// <summary>
/// HTTP/1.1 over a plain socket, for what HttpClient will not send: a body that stalls half-way, malformed
/// chunked framing, oversized request lines and headers, raw header bytes.
/// </summary>
internal static class RawHttp
{
    /// <summary>Connects to <paramref name="server"/>, writes <paramref name="head"/>, optionally waits, writes <paramref name="rest"/>, reads to the end.</summary>
    public static async Task<RawResponse> SendAsync(Uri server, byte[] head, byte[]? rest = null, TimeSpan? pauseBetween = null, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port, cts.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(head, cts.Token);
        if (pauseBetween is { } pause)
        {
            await Task.Delay(pause, cts.Token);
        }

        if (rest is not null)
        {
            try
            {
                await stream.WriteAsync(rest, cts.Token);
            }
            catch (IOException)
            {
                // The server may already have answered and closed; its answer is still readable.
            }
        }

        using var received = new MemoryStream();
        var buffer = new byte[8192];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cts.Token)) > 0)
            {
                received.Write(buffer, 0, read);
                if (TryParse(received.ToArray(), atEnd: false, out var complete))
                {
                    return complete;
                }
            }
        }
        catch (IOException)
        {
            // Reset after the answer: parse what arrived.
        }

        return TryParse(received.ToArray(), atEnd: true, out var response)
            ? response
            : throw new InvalidOperationException("Incomplete HTTP response: " + Encoding.ASCII.GetString(received.ToArray()));
    }

    public static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    private static bool TryParse(byte[] data, bool atEnd, out RawResponse response)
    {
        response = null!;
        var text = Encoding.UTF8.GetString(data);
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (end < 0)
        {
            return false;
        }

        var lines = text[..end].Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = lines.Skip(1)
            .Select(l => l.Split(':', 2))
            .GroupBy(p => p[0].Trim().ToLowerInvariant())
            .ToDictionary(g => g.Key, g => g.Last()[1].Trim());
        var rest = text[(end + 4)..];
        if (headers.TryGetValue("content-length", out var length))
        {
            var n = int.Parse(length, System.Globalization.CultureInfo.InvariantCulture);
            if (Encoding.UTF8.GetByteCount(rest) < n)
            {
                return false;
            }

            response = new RawResponse(status, headers, rest);
            return true;
        }

        if (headers.TryGetValue("transfer-encoding", out var encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var body = new StringBuilder();
            var position = 0;
            while (true)
            {
                var lineEnd = rest.IndexOf("\r\n", position, StringComparison.Ordinal);
                if (lineEnd < 0)
                {
                    return false;
                }

                var size = Convert.ToInt32(rest[position..lineEnd].Split(';')[0], 16);
                if (size == 0)
                {
                    response = new RawResponse(status, headers, body.ToString());
                    return true;
                }

                // Sizes count bytes; the error bodies here are ASCII-safe JSON, so chars = bytes.
                if (lineEnd + 2 + size + 2 > rest.Length)
                {
                    return false;
                }

                body.Append(rest, lineEnd + 2, size);
                position = lineEnd + 2 + size + 2;
            }
        }

        // No framing: the body runs to the end of the connection.
        response = new RawResponse(status, headers, rest);
        return atEnd;
    }
}
