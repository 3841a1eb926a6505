using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Network;

public class NetworkFormsTests
{
    private static readonly string[] Models =
    [
        "mlp 784-256x3-10 act=tanh init=xavier-uniform norm=batch dropout=0.25",
        "mlp 6-5-7-3 act=gelu residual=zero norm=layer out-init=normal:0.05",
        "lstm 2-64-1 forget-bias=1", "gru 28-16x2-10 init=orthogonal:1.5", "rnn 2-8-1 act=relu init=identity",
        "resnet20", "resnet56 shortcut=b start=zero-gamma", "resnet32 start=zero norm=none in=1x28x28 classes=7", "plain20 width=8",
        "cnn 1x28x28-c16-c32s2-p-gap-10 act=leaky-relu norm=group:4 init=he-uniform", "cnn 3x8x8-c4x2-f16-5 norm=none",
        "transformer vocab=65 d=32 heads=4 layers=2 ctx=16",
        "transformer vocab=10 d=16 heads=2 layers=3 ctx=8 norm=post pos=sin tie=no act=swiglu rms=yes qk-norm=yes dropout=0.1",
        "transformer vocab=12 d=8 heads=2 layers=1 ctx=4 pos=rope rms=yes act=relu",
    ];

    public static TheoryData<string> ModelTexts() => [.. Models];

    [Theory]
    [MemberData(nameof(ModelTexts))]
    public void TextForm_RoundTripsExactly(string model)
    {
        var d = NetworkDescription.Parse(model);
        var text = NetworkText.Format(d);
        Assert.Equal(d, NetworkText.Parse(text));
        Assert.Equal(d, NetworkDescription.Parse(text));
        Assert.Equal(text, NetworkText.Format(NetworkText.Parse(text)));
    }

    [Theory]
    [MemberData(nameof(ModelTexts))]
    public void JsonForm_RoundTripsExactly(string model)
    {
        var d = NetworkDescription.Parse(model);
        var json = NetworkJson.ToJson(d).ToJsonString();
        Assert.Equal(d, NetworkJson.Parse(json));
        Assert.Equal(d, NetworkDescription.Parse(json));
        Assert.Equal(json, NetworkJson.ToJson(NetworkJson.Parse(json)).ToJsonString());
    }

    [Fact]
    public void Forms_RandomDescriptions_RoundTripThroughTextAndJson()
    {
        // a property over 300 seeded random trees of every block kind and option
        for (ulong seed = 0; seed < 300; seed++)
        {
            var rng = new Random((int)seed);
            var d = new NetworkDescription([1 + rng.Next(4), 1 + rng.Next(9)], RandomSequence(rng, 0) with { Name = rng.Next(2) == 0 ? null : "root" });
            var text = NetworkText.Format(d);
            Assert.True(d.Equals(NetworkText.Parse(text)), $"seed {seed}: text {text}");
            Assert.True(d.Equals(NetworkJson.Parse(NetworkJson.ToJson(d).ToJsonString())), $"seed {seed}: JSON of {text}");
        }
    }

    private static SequenceBlock RandomSequence(Random rng, int depth)
    {
        var blocks = new Block[rng.Next(depth == 0 ? 1 : 0, 4)];
        for (int i = 0; i < blocks.Length; i++) blocks[i] = RandomBlock(rng, depth) with { Name = rng.Next(3) == 0 ? $"b{i}_x-{rng.Next(9)}" : null };
        return new SequenceBlock(blocks);
    }

    private static Block RandomBlock(Random rng, int depth)
    {
        Size2d Size(int min) => rng.Next(2) == 0 ? min + rng.Next(3) : (min + rng.Next(3), min + rng.Next(3));
        InitScheme Init() => rng.Next(3) switch
        {
            0 => new InitScheme(InitKind.Normal, Math.Round(rng.NextDouble(), 3) + 0.001),
            1 => new InitScheme(Enum.GetValues<InitKind>().Where(k => k != InitKind.Normal).ElementAt(rng.Next(Enum.GetValues<InitKind>().Length - 1))),
            _ => new InitScheme(InitKind.Orthogonal, 1.25),
        };
        int kinds = depth >= 2 ? 9 : 11;
        int pick = rng.Next(kinds + 3);
        return (pick >= kinds ? pick - kinds + 11 : pick) switch
        {
            11 => new EmbeddingBlock(1 + rng.Next(50), 1 + rng.Next(9)) { Std = rng.Next(2) == 0 ? 1.0 : 0.02 },
            12 => new PositionBlock(rng.Next(2) == 0 ? PositionalKind.Learned : PositionalKind.Sinusoidal, 1 + rng.Next(64)),
            13 => new TransformerLayerBlock(1 + rng.Next(4), 1 + rng.Next(64))
            {
                NormFirst = rng.Next(2) == 0, FeedForward = (FeedForwardKind)rng.Next(3), Dropout = Math.Round(rng.NextDouble() * 0.5, 3),
                RmsNorm = rng.Next(2) == 0, Causal = rng.Next(2) == 0, Rotary = rng.Next(2) == 0, QkNorm = rng.Next(2) == 0,
            },
            0 when rng.Next(4) == 0 => new LinearBlock(1 + rng.Next(50)) { Bias = false, Tied = true },
            0 => new LinearBlock(1 + rng.Next(50)) { Bias = rng.Next(2) == 0, Init = rng.Next(2) == 0 ? null : Init() },
            1 => new ConvBlock(1 + rng.Next(50), Size(1)) { Stride = Size(1), Padding = Size(0), Dilation = Size(1), Groups = 1 + rng.Next(3), Bias = rng.Next(2) == 0, Init = Init() },
            2 => new PoolBlock(rng.Next(2) == 0 ? PoolKind.Max : PoolKind.Avg, Size(1)) { Stride = rng.Next(2) == 0 ? null : Size(1), Padding = Size(0) },
            3 => new AdaptiveAvgPoolBlock(Size(1)),
            4 => rng.Next(5) switch
            {
                0 => new NormBlock(NormalizationKind.Batch), 1 => new NormBlock(NormalizationKind.Layer), 2 => new NormBlock(NormalizationKind.Layer) { Last = true },
                3 => new NormBlock(NormalizationKind.Rms), _ => new NormBlock(NormalizationKind.Group, 1 + rng.Next(8)),
            },
            5 => new ActBlock((Activation)rng.Next(Enum.GetValues<Activation>().Length)),
            6 => new DropoutBlock(Math.Round(rng.NextDouble() * 0.9, 4)),
            7 => new FlattenBlock(),
            8 => new RecurrentBlock((RecurrentCellKind)rng.Next(4), 1 + rng.Next(32))
            {
                Layers = 1 + rng.Next(3), Init = rng.Next(2) == 0 ? new RecurrentInit(RecurrentInitKind.Default) : new RecurrentInit(RecurrentInitKind.Normal, 0.25),
                ForgetBias = rng.Next(2) == 0 ? null : 1.5, Output = (RecurrentOutputKind)rng.Next(2),
            },
            9 => RandomSequence(rng, depth + 1),
            _ => new ResidualBlock(RandomSequence(rng, depth + 1) with { Name = rng.Next(2) == 0 ? null : "branch" }, (ShortcutKind)rng.Next(3),
                (BranchStart)rng.Next(3), rng.Next(2) == 0 ? null : Activation.Relu),
        };
    }

    [Fact]
    public void TextForm_ResNetBlock_ReadsAsWritten()
    {
        var d = Shorthands.ResNet(20, shortcut: ShortcutKind.Projection);
        var text = d.ToString();
        Assert.StartsWith("net 3x32x32 seq[conv1:conv(out=16,k=3,p=1,bias=false) bn1:batchnorm relu:relu layer1:seq[residual(shortcut=projection,post=relu)[seq[conv1:conv(out=16,k=3,p=1,bias=false) bn1:batchnorm relu:relu conv2:", text, StringComparison.Ordinal);
        Assert.EndsWith("avgpool:adaptiveavgpool(size=1) flatten:flatten fc:linear(out=10)]", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Shorthands_ExpandIntoTheirBlocks()
    {
        var mlp = NetworkDescription.Parse("mlp 8-4-2 act=tanh residual=zero norm=batch");
        Assert.Equal("net 8 layers:seq[residual(shortcut=projection,start=zero)[branch:seq[linear(out=4,init=default) batchnorm tanh]] linear(out=2,init=default)]", mlp.ToString());
        Assert.Equal(NetworkDescription.Parse("gru 3-4-2"), Shorthands.FromSpec(NetworkSpecs.ParseAny("gru 3-4-2")));
        Assert.Equal(NetworkDescription.Parse("mlp 3-4-2"), Shorthands.FromSpec(NetworkSpecs.ParseAny("mlp 3-4-2")));
        // docs/model-spec.md's example
        Assert.Equal("net 8 layers:seq[linear(out=4,init=he-normal) batchnorm relu linear(out=2,init=default)]",
            NetworkDescription.Parse("mlp 8-4-2 init=he-normal norm=batch").ToString());
        Assert.Equal("net 1x2 seq[rnn:recurrent(cell=lstm,hidden=64,forget-bias=1) head:linear(out=1)]", NetworkDescription.Parse("lstm 2-64-1 forget-bias=1").ToString());
        Assert.Equal("net 1x28x28 seq[conv(out=8,k=3,s=2,p=1,bias=false) batchnorm relu maxpool(k=2) adaptiveavgpool(size=1) flatten linear(out=10)]",
            NetworkDescription.Parse("cnn 1x28x28-c8s2-p-gap-10").ToString());
        var plain = Shorthands.ResNet(20, residual: false);
        Assert.DoesNotContain("residual", plain.ToString(), StringComparison.Ordinal);
        Assert.Equal(19, plain.Shapes().Count(s => s.Block is ConvBlock));
        var resnet = NetworkDescription.Parse("resnet110 shortcut=b start=zero-gamma");
        Assert.Equal(54, resnet.Shapes().Count(s => s.Block is ResidualBlock && !s.IsShortcut));
        Assert.All(resnet.Shapes().Select(s => s.Block).OfType<ResidualBlock>(), r => Assert.Equal((ShortcutKind.Projection, BranchStart.ZeroGamma), (r.Shortcut, r.Start)));
        Assert.Equal(Shorthands.ResNet(32, input: [1, 28, 28], classes: 7, width: 8), NetworkDescription.Parse("resnet32 in=1x28x28 classes=7 width=8"));
    }

    [Theory]
    [InlineData("resnet21", "6n + 2")]
    [InlineData("plain20 shortcut=b", "has no shortcuts")]
    [InlineData("resnet20 shortcut=c", "shortcut 'c'")]
    [InlineData("resnet20 depth=3", "unknown option 'depth'")]
    [InlineData("resnet20 norm=none start=zero-gamma", "zero-gamma needs BatchNorm")]
    [InlineData("cnn 1x28x28-c16-q-10", "cnn item 'q'")]
    [InlineData("cnn 1x28x28-f8-c16-10", "conv 'c16' after a linear")]
    [InlineData("cnn 1x0x28-c16-10", "shape '1x0x28'")]
    [InlineData("vgg16", "expected JSON")]
    [InlineData("net 4 seq[linear(out=4,color=red)]", "has no option 'color'")]
    [InlineData("net 4 seq[linear]", "linear needs 'out='")]
    [InlineData("net 4 seq[linear(out=4)", "expected ']'")]
    [InlineData("net 4 seq[frobnicate]", "unknown activation 'frobnicate'")]
    [InlineData("net 4 residual[seq[relu] seq[relu]]", "one seq")]
    [InlineData("{\"input\":[4],\"root\":{\"block\":\"sequence\",\"blocks\":[{\"block\":\"linear\",\"out\":0}]}}", "root.blocks[0].out must be an integer")]
    [InlineData("{\"input\":[4],\"root\":{\"block\":\"sequence\",\"blocks\":[{\"block\":\"conv\",\"out\":2,\"kernel\":3,\"init\":\"bogus\"}]}}", "root.blocks[0].init")]
    [InlineData("{\"input\":[4],\"root\":{\"block\":\"linear\",\"out\":2}}", "'root' must be a sequence")]
    [InlineData("{\"input\":[4],\"root\":{\"block\":\"sequence\",\"blocks\":[],\"extra\":1}}", "has no field 'extra'")]
    public void Parse_BadText_ThrowsNamingTheProblem(string text, string fragment)
    {
        var e = Assert.Throws<FormatException>(() => NetworkDescription.Parse(text));
        Assert.Contains(fragment, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FluentBuilder_GivesTheSameDescriptionAsTheText()
    {
        var fluent = NetworkDescription.Create([3, 8, 8], n => n
            .Conv(4, 3, padding: 1, bias: false, name: "conv1").Norm(NormalizationKind.Batch, name: "bn1").Act(Activation.Relu)
            .Residual(b => b.Conv(4, 3, padding: 1).Norm(NormalizationKind.Group, 2), ShortcutKind.Identity, BranchStart.ZeroGamma, Activation.Relu, name: "block")
            .Pool(PoolKind.Avg, 2).Dropout(0.5).Flatten().Linear(3, init: new InitScheme(InitKind.XavierNormal), name: "fc"));
        Assert.Equal(NetworkText.Parse("net 3x8x8 seq[conv1:conv(out=4,k=3,p=1,bias=false) bn1:batchnorm relu " +
            "block:residual(start=zero-gamma,post=relu)[seq[conv(out=4,k=3,p=1) groupnorm(groups=2)]] avgpool(k=2) dropout(p=0.5) flatten fc:linear(out=3,init=xavier-normal)]"), fluent);
    }
}
