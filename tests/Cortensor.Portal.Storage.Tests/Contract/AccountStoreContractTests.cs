using Cortensor.Portal.Accounts.Organizations;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>The behaviour every durable <see cref="IAccountStore"/> must show (users, organizations, members).</summary>
/// <remarks>
/// Beyond the interface docs: a duplicate user id or a duplicate (auth provider, auth subject), and a duplicate org
/// id, throw <see cref="InvalidOperationException"/>; <see cref="IAccountStore.SetMemberAsync"/> for an unknown org
/// or user throws <see cref="InvalidOperationException"/>, and when the member exists it changes only the role
/// (the first <see cref="OrganizationMember.CreatedAt"/> stays).
/// </remarks>
public abstract class AccountStoreContractTests : ExtendedStoreContractTests
{
    [Fact]
    public async Task Users_AddThenFind_RoundTripsAllFields()
    {
        await using var store = await CreateAsync();
        var full = NewUser("usr_1") with
        {
            Email = "ada@example.com",
            DisplayName = "Ada Lovelace",
            Status = UserStatus.Disabled,
            CreatedAt = new DateTimeOffset(2026, 1, 15, 17, 30, 1, TimeSpan.FromHours(5.5)).AddTicks(1234560),
        };
        var sparse = NewUser("usr_2") with { Email = null, DisplayName = null };

        await store.Accounts.AddUserAsync(full);
        await store.Accounts.AddUserAsync(sparse);

        AssertSameUser(full, await store.Accounts.FindUserAsync("usr_1"));
        AssertSameUser(sparse, await store.Accounts.FindUserAsync("usr_2"));
    }

    [Fact]
    public async Task Users_FindByIdentity_MatchesProviderAndSubject()
    {
        await using var store = await CreateAsync();
        var user = NewUser("usr_1") with { AuthProvider = "supabase", AuthSubject = "sub-123" };
        await store.Accounts.AddUserAsync(user);
        await store.Accounts.AddUserAsync(NewUser("usr_2") with { AuthProvider = "local", AuthSubject = "sub-123" });

        AssertSameUser(user, await store.Accounts.FindUserByIdentityAsync("supabase", "sub-123"));
        Assert.Equal("usr_2", (await store.Accounts.FindUserByIdentityAsync("local", "sub-123"))?.Id);
        Assert.Null(await store.Accounts.FindUserByIdentityAsync("supabase", "sub-999"));
        Assert.Null(await store.Accounts.FindUserByIdentityAsync("github", "sub-123"));
    }

    [Fact]
    public async Task Users_FindUnknown_ReturnsNull()
    {
        await using var store = await CreateAsync();

        Assert.Null(await store.Accounts.FindUserAsync("usr_missing"));
    }

    [Fact]
    public async Task Users_AddDuplicateId_ThrowsAndKeepsFirst()
    {
        await using var store = await CreateAsync();
        await store.Accounts.AddUserAsync(NewUser("usr_1") with { Email = "first@example.com" });

        await Assert.ThrowsAnyAsync<InvalidOperationException>(
            () => store.Accounts.AddUserAsync(NewUser("usr_1") with { AuthSubject = "other", Email = "second@example.com" }));

        Assert.Equal("first@example.com", (await store.Accounts.FindUserAsync("usr_1"))?.Email);
    }

    [Fact]
    public async Task Users_AddDuplicateIdentity_Throws()
    {
        await using var store = await CreateAsync();
        await store.Accounts.AddUserAsync(NewUser("usr_1") with { AuthProvider = "supabase", AuthSubject = "sub-1" });

        await Assert.ThrowsAnyAsync<InvalidOperationException>(
            () => store.Accounts.AddUserAsync(NewUser("usr_2") with { AuthProvider = "supabase", AuthSubject = "sub-1" }));

        Assert.Null(await store.Accounts.FindUserAsync("usr_2"));
    }

    [Fact]
    public async Task Orgs_AddThenFind_RoundTripsAllFields()
    {
        await using var store = await CreateAsync();
        await store.Accounts.AddUserAsync(NewUser("usr_1"));
        var full = NewOrg("org_a", "Acme") with
        {
            OwnerUserId = "usr_1",
            Status = OrganizationStatus.Suspended,
            CreatedAt = BaseTime.AddTicks(9876540).ToOffset(TimeSpan.FromHours(-8)),
        };
        var sparse = NewOrg("org_b", "Beta") with { OwnerUserId = null };

        await store.Accounts.AddOrganizationAsync(full);
        await store.Accounts.AddOrganizationAsync(sparse);

        AssertSameOrg(full, await store.Accounts.FindOrganizationAsync("org_a"));
        AssertSameOrg(sparse, await store.Accounts.FindOrganizationAsync("org_b"));
        Assert.Null(await store.Accounts.FindOrganizationAsync("org_missing"));
    }

    [Fact]
    public async Task Orgs_AddDuplicateId_ThrowsAndKeepsFirst()
    {
        await using var store = await CreateAsync();
        await store.Accounts.AddOrganizationAsync(NewOrg("org_a", "First"));

        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Accounts.AddOrganizationAsync(NewOrg("org_a", "Second")));

        Assert.Equal("First", (await store.Accounts.FindOrganizationAsync("org_a"))?.Name);
    }

    [Fact]
    public async Task Orgs_SetStatus_ChangesStatus_UnknownReturnsFalse()
    {
        await using var store = await CreateAsync();
        await store.Accounts.AddOrganizationAsync(NewOrg("org_a", "Acme"));

        Assert.True(await store.Accounts.SetOrganizationStatusAsync("org_a", OrganizationStatus.Suspended));
        Assert.Equal(OrganizationStatus.Suspended, (await store.Accounts.FindOrganizationAsync("org_a"))?.Status);
        Assert.True(await store.Accounts.SetOrganizationStatusAsync("org_a", OrganizationStatus.Active));
        Assert.Equal(OrganizationStatus.Active, (await store.Accounts.FindOrganizationAsync("org_a"))?.Status);
        Assert.False(await store.Accounts.SetOrganizationStatusAsync("org_missing", OrganizationStatus.Suspended));
        Assert.Null(await store.Accounts.FindOrganizationAsync("org_missing"));
    }

    [Fact]
    public async Task Members_SetThenList_RoundTripsAllFields()
    {
        await using var store = await CreateAsync();
        await SeedAsync(store, ["usr_1"], ["org_a"]);
        var member = new OrganizationMember("org_a", "usr_1", OrganizationRole.Admin, BaseTime.AddTicks(1234560).ToOffset(TimeSpan.FromHours(2)));

        await store.Accounts.SetMemberAsync(member);

        var listed = Assert.Single(await store.Accounts.ListMembersAsync("org_a"));
        Assert.Equal("org_a", listed.OrgId);
        Assert.Equal("usr_1", listed.UserId);
        Assert.Equal(OrganizationRole.Admin, listed.Role);
        AssertUtcInstant(member.CreatedAt, listed.CreatedAt);
    }

    [Fact]
    public async Task Members_SetExisting_ChangesRoleOnly()
    {
        await using var store = await CreateAsync();
        await SeedAsync(store, ["usr_1"], ["org_a"]);
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_1", OrganizationRole.Member, BaseTime));

        await store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_1", OrganizationRole.Owner, BaseTime.AddDays(3)));

        var listed = Assert.Single(await store.Accounts.ListMembersAsync("org_a"));
        Assert.Equal(OrganizationRole.Owner, listed.Role);
        AssertUtcInstant(BaseTime, listed.CreatedAt);
    }

    [Fact]
    public async Task Members_SetWithUnknownOrgOrUser_Throws()
    {
        await using var store = await CreateAsync();
        await SeedAsync(store, ["usr_1"], ["org_a"]);

        await Assert.ThrowsAnyAsync<InvalidOperationException>(
            () => store.Accounts.SetMemberAsync(new OrganizationMember("org_missing", "usr_1", OrganizationRole.Member, BaseTime)));
        await Assert.ThrowsAnyAsync<InvalidOperationException>(
            () => store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_missing", OrganizationRole.Member, BaseTime)));

        Assert.Empty(await store.Accounts.ListMembersAsync("org_a"));
        Assert.Empty(await store.Accounts.ListOrganizationsForUserAsync("usr_1"));
    }

    [Fact]
    public async Task Members_Remove_ReturnsWhetherRemoved()
    {
        await using var store = await CreateAsync();
        await SeedAsync(store, ["usr_1", "usr_2"], ["org_a"]);
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_1", OrganizationRole.Member, BaseTime));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_2", OrganizationRole.Member, BaseTime));

        Assert.True(await store.Accounts.RemoveMemberAsync("org_a", "usr_1"));
        Assert.False(await store.Accounts.RemoveMemberAsync("org_a", "usr_1"));
        Assert.False(await store.Accounts.RemoveMemberAsync("org_missing", "usr_2"));

        Assert.Equal(["usr_2"], (await store.Accounts.ListMembersAsync("org_a")).Select(m => m.UserId));
        Assert.NotNull(await store.Accounts.FindUserAsync("usr_1"));
    }

    [Fact]
    public async Task Members_List_OnlyThatOrg_OrderedByCreatedAtThenUserId()
    {
        await using var store = await CreateAsync();
        await SeedAsync(store, ["usr_a", "usr_b", "usr_c", "usr_d"], ["org_a", "org_b"]);
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_c", OrganizationRole.Member, BaseTime.AddMinutes(2)));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_b", OrganizationRole.Admin, BaseTime));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_b", "usr_d", OrganizationRole.Owner, BaseTime.AddMinutes(1)));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_a", OrganizationRole.Owner, BaseTime));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_d", OrganizationRole.Member, BaseTime.AddMinutes(1)));

        var members = await store.Accounts.ListMembersAsync("org_a");

        Assert.Equal(["usr_a", "usr_b", "usr_d", "usr_c"], members.Select(m => m.UserId));
        Assert.Equal([OrganizationRole.Owner, OrganizationRole.Admin, OrganizationRole.Member, OrganizationRole.Member], members.Select(m => m.Role));
        Assert.All(members, m => Assert.Equal("org_a", m.OrgId));
        Assert.Empty(await store.Accounts.ListMembersAsync("org_missing"));
    }

    [Fact]
    public async Task OrgsForUser_OnlyMemberships_OrderedByName()
    {
        await using var store = await CreateAsync();
        await SeedAsync(store, ["usr_1", "usr_2"], []);
        await store.Accounts.AddOrganizationAsync(NewOrg("org_1", "Charlie") with { Status = OrganizationStatus.Suspended });
        await store.Accounts.AddOrganizationAsync(NewOrg("org_2", "Alpha"));
        await store.Accounts.AddOrganizationAsync(NewOrg("org_3", "Bravo") with { OwnerUserId = "usr_1" });
        await store.Accounts.AddOrganizationAsync(NewOrg("org_4", "Delta"));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_1", "usr_1", OrganizationRole.Member, BaseTime));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_3", "usr_1", OrganizationRole.Owner, BaseTime.AddMinutes(1)));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_2", "usr_1", OrganizationRole.Admin, BaseTime.AddMinutes(2)));
        await store.Accounts.SetMemberAsync(new OrganizationMember("org_4", "usr_2", OrganizationRole.Owner, BaseTime));

        var orgs = await store.Accounts.ListOrganizationsForUserAsync("usr_1");

        Assert.Equal(["Alpha", "Bravo", "Charlie"], orgs.Select(o => o.Name));
        Assert.Equal(["org_2", "org_3", "org_1"], orgs.Select(o => o.Id));
        Assert.Equal("usr_1", orgs[1].OwnerUserId);
        Assert.Equal(OrganizationStatus.Suspended, orgs[2].Status);
        AssertUtcInstant(BaseTime, orgs[0].CreatedAt);
        Assert.Equal(["Delta"], (await store.Accounts.ListOrganizationsForUserAsync("usr_2")).Select(o => o.Name));
        Assert.Empty(await store.Accounts.ListOrganizationsForUserAsync("usr_missing"));
    }

    // ---------------------------------------------------------------- helpers

    protected static PortalUser NewUser(string id) => new()
    {
        Id = id,
        AuthProvider = "supabase",
        AuthSubject = "sub-" + id,
        Email = id + "@example.com",
        DisplayName = "User " + id,
        CreatedAt = BaseTime,
    };

    protected static Organization NewOrg(string id, string name) => new()
    {
        Id = id,
        Name = name,
        CreatedAt = BaseTime,
    };

    protected static async Task SeedAsync(ExtendedStoreUnderTest store, string[] userIds, string[] orgIds)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(userIds);
        ArgumentNullException.ThrowIfNull(orgIds);
        foreach (var id in userIds)
        {
            await store.Accounts.AddUserAsync(NewUser(id));
        }

        foreach (var id in orgIds)
        {
            await store.Accounts.AddOrganizationAsync(NewOrg(id, "Org " + id));
        }
    }

    protected static void AssertSameUser(PortalUser expected, PortalUser? actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected with { CreatedAt = actual.CreatedAt }, actual);
        AssertUtcInstant(expected.CreatedAt, actual.CreatedAt);
    }

    protected static void AssertSameOrg(Organization expected, Organization? actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected with { CreatedAt = actual.CreatedAt }, actual);
        AssertUtcInstant(expected.CreatedAt, actual.CreatedAt);
    }
}
