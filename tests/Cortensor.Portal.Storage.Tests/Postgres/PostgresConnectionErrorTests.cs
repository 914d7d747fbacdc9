using System.Net;
using System.Net.Sockets;
using System.Text;
using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cortensor.Portal.Storage.Tests.Postgres;

public sealed class PostgresConnectionErrorTests
{
    private const string Password = "S3cret-Pa55w0rd-never-shown";

    [Fact]
    public async Task Migrate_UnreachablePort_ThrowsUnreachableWithoutPassword()
    {
        var port = FreePort();
        var connectionString = $"Host=127.0.0.1;Port={port};Username=portal;Password={Password};Database=portal;Timeout=3";

        var ex = await Assert.ThrowsAsync<PostgresStorageException>(() => MigrateAsync(connectionString));

        Assert.Equal(PostgresStorageError.Unreachable, ex.Error);
        Assert.Contains($"127.0.0.1:{port}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Host and Port", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Password, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_BadPassword_ThrowsAuthenticationFailedWithoutPassword()
    {
        // A minimal server speaking the Postgres protocol that asks for a password and rejects it with 28P01,
        // exactly as a real server does; the CI server uses trust authentication and rejects nothing.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var server = RejectPasswordsAsync(listener, stop.Token);
        var connectionString = $"Host=127.0.0.1;Port={port};Username=portal_app;Password={Password};Database=portal;Timeout=5;Pooling=false";

        var ex = await Assert.ThrowsAsync<PostgresStorageException>(() => MigrateAsync(connectionString));
        await stop.CancelAsync();
        var receivedPassword = await server.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(Password, receivedPassword); // the client did send it, so the failure really was the password
        Assert.Equal(PostgresStorageError.AuthenticationFailed, ex.Error);
        Assert.Contains("28P01", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'portal_app'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Password", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Password, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_MissingDatabase_ThrowsDatabaseMissingWithoutPassword()
    {
        var builder = new NpgsqlConnectionStringBuilder(PostgresTestDatabase.RequireConnectionString())
        {
            Database = "missing_" + Guid.NewGuid().ToString("N")[..8],
            Password = Password, // ignored by a trust server, but must never show up
        };

        var ex = await Assert.ThrowsAsync<PostgresStorageException>(() => MigrateAsync(builder.ConnectionString));

        Assert.Equal(PostgresStorageError.DatabaseMissing, ex.Error);
        Assert.Contains(builder.Database, ex.Message, StringComparison.Ordinal);
        Assert.Contains("3D000", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Password, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Create_UnparsableConnectionString_ThrowsWithoutEchoingIt()
    {
        var ex = Assert.Throws<PostgresStorageException>(() =>
            PostgresDataSourceFactory.Create(new PostgresStorageOptions { ConnectionString = $"Host=x;Port=notaport;Password={Password}" }));

        Assert.Equal(PostgresStorageError.InvalidConnectionString, ex.Error);
        Assert.DoesNotContain(Password, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Create_ForcesPoolerSafeSettings()
    {
        await using var dataSource = PostgresDataSourceFactory.Create(new PostgresStorageOptions
        {
            ConnectionString = $"Host=db.example;Username=u;Password={Password};Max Auto Prepare=20",
        });

        var settings = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        Assert.Equal(0, settings.MaxAutoPrepare);
        Assert.True(settings.NoResetOnClose);
        Assert.Equal(PostgresDataSourceFactory.DefaultApplicationName, settings.ApplicationName);
        Assert.DoesNotContain(Password, dataSource.ConnectionString, StringComparison.Ordinal);
    }

    private static async Task MigrateAsync(string connectionString)
    {
        var options = Options.Create(new PostgresStorageOptions { ConnectionString = connectionString, Schema = "portal" });
        await using var dataSource = PostgresDataSourceFactory.Create(options.Value);
        await new PostgresMigrator(dataSource, options, TimeProvider.System).MigrateAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// Serves connections until cancelled (Npgsql may retry the login); returns the first password
    /// received.
    /// </summary>
    private static async Task<string?> RejectPasswordsAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        string? first = null;
        try
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync(cancellationToken);
                var password = await RejectPasswordAsync(client.GetStream());
                first ??= password;
            }
        }
        catch (OperationCanceledException)
        {
            return first;
        }
    }

    /// <summary>Answers SSL/GSS requests with 'N', asks for a cleartext password, returns it after rejecting it with 28P01.</summary>
    private static async Task<string> RejectPasswordAsync(NetworkStream stream)
    {
        while (true)
        {
            var length = ReadInt32(await ReadExactlyAsync(stream, 4));
            var body = await ReadExactlyAsync(stream, length - 4);
            var code = ReadInt32(body);
            if (code is 80877103 or 80877104) // SSLRequest, GSSENCRequest
            {
                await stream.WriteAsync("N"u8.ToArray());
                continue;
            }

            break; // StartupMessage
        }

        await stream.WriteAsync(new byte[] { (byte)'R', 0, 0, 0, 8, 0, 0, 0, 3 }); // AuthenticationCleartextPassword
        var type = (await ReadExactlyAsync(stream, 1))[0];
        Assert.Equal((byte)'p', type);
        var passwordLength = ReadInt32(await ReadExactlyAsync(stream, 4));
        var password = Encoding.UTF8.GetString(await ReadExactlyAsync(stream, passwordLength - 4)).TrimEnd('\0');

        var fields = new MemoryStream();
        foreach (var (field, value) in new[] { ('S', "FATAL"), ('V', "FATAL"), ('C', "28P01"), ('M', "password authentication failed for user \"portal_app\"") })
        {
            fields.WriteByte((byte)field);
            fields.Write(Encoding.UTF8.GetBytes(value));
            fields.WriteByte(0);
        }

        fields.WriteByte(0);
        var error = new MemoryStream();
        error.WriteByte((byte)'E');
        var len = (int)fields.Length + 4;
        error.Write([(byte)(len >> 24), (byte)(len >> 16), (byte)(len >> 8), (byte)len]);
        fields.WriteTo(error);
        await stream.WriteAsync(error.ToArray());
        await stream.FlushAsync();
        return password;
    }

    private static async Task<byte[]> ReadExactlyAsync(NetworkStream stream, int count)
    {
        var buffer = new byte[count];
        await stream.ReadExactlyAsync(buffer);
        return buffer;
    }

    private static int ReadInt32(byte[] bytes) => (bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3];
}
