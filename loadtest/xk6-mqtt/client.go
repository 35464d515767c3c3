package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/grafana/sobek"

	"go.k6.io/k6/js/common"
	"go.k6.io/k6/js/modules"
	"go.k6.io/k6/lib"
	"go.k6.io/k6/metrics"
)

// Client is one MQTT 3.1.1 connection, owned by the VU that created it. Its exported methods are
// the JS API (k6 lower-cases their first letter): publish, subscribe, poll, received, dropped,
// isConnected, lastError, close.
type Client struct {
	vu      modules.VU
	metrics *clientMetrics
	opts    options
	conn    paho.Client

	// Written by paho's goroutines, read by the VU.
	received atomic.Int64
	dropped  atomic.Int64
	inbox    chan inboundMessage

	// VU goroutine only.
	reported int64 // how much of received is already in mqtt_messages_received
	lastErr  string
	closed   bool
}

type inboundMessage struct {
	topic    string
	payload  []byte
	qos      byte
	retained bool
}

type options struct {
	broker         *url.URL // scheme and host only
	tls            bool
	username       string
	password       string
	clientID       string
	cleanSession   bool
	keepAlive      time.Duration
	connectTimeout time.Duration
	ackTimeout     time.Duration
	bufferSize     int
}

// newClient is the JS constructor: new Client({url, username, password, clientId, ...}).
// It connects before returning and throws when the broker refuses or cannot be reached. It may
// run in a VU's init code (connected before the load starts), or in VU code.
func (mi *moduleInstance) newClient(call sobek.ConstructorCall) *sobek.Object {
	rt := mi.vu.Runtime()
	opts, err := parseOptions(rt, call.Argument(0))
	if err != nil {
		common.Throw(rt, err)
	}
	c := &Client{
		vu:      mi.vu,
		metrics: &mi.metrics,
		opts:    opts,
		inbox:   make(chan inboundMessage, opts.bufferSize),
	}
	if err := c.connect(); err != nil {
		common.Throw(rt, err)
	}
	return rt.ToValue(c).ToObject(rt)
}

func (c *Client) connect() error {
	o := paho.NewClientOptions().
		AddBroker(c.opts.broker.String()).
		SetClientID(c.opts.clientID).
		SetUsername(c.opts.username).
		SetPassword(c.opts.password).
		SetProtocolVersion(4).
		SetCleanSession(c.opts.cleanSession).
		SetKeepAlive(c.opts.keepAlive).
		SetConnectTimeout(c.opts.connectTimeout).
		SetWriteTimeout(c.opts.ackTimeout).
		// A load test must see a lost connection as failures, not hide it behind reconnects.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetDefaultPublishHandler(c.onMessage).
		SetCustomOpenConnectionFn(c.dial)
	conn := paho.NewClient(o)
	token := conn.Connect()
	if !token.WaitTimeout(c.opts.connectTimeout + time.Second) {
		conn.Disconnect(0)
		return fmt.Errorf("mqtt: connecting to %s as %q: no CONNACK within %s", c.opts.broker, c.opts.clientID, c.opts.connectTimeout)
	}
	if err := token.Error(); err != nil {
		return fmt.Errorf("mqtt: connecting to %s as %q: %w", c.opts.broker, c.opts.clientID, err)
	}
	c.conn = conn
	return nil
}

// dial replaces paho's default dialer so that Nagle is off on every connection, explicitly: with
// it on, a QoS 1 round trip waits on delayed ACKs and takes about 40 ms instead of under 1.
func (c *Client) dial(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	dialer := net.Dialer{Timeout: o.ConnectTimeout}
	conn, err := dialer.DialContext(c.vu.Context(), "tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		if err := tcp.SetNoDelay(true); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	if !c.opts.tls {
		return conn, nil
	}
	tlsConn := tls.Client(conn, &tls.Config{ServerName: uri.Hostname(), MinVersion: tls.VersionTLS12})
	ctx, cancel := context.WithTimeout(c.vu.Context(), o.ConnectTimeout)
	defer cancel()
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tlsConn, nil
}

func (c *Client) onMessage(_ paho.Client, m paho.Message) {
	c.received.Add(1)
	select {
	case c.inbox <- inboundMessage{topic: m.Topic(), payload: m.Payload(), qos: m.Qos(), retained: m.Retained()}:
	default:
		// The script does not poll, or not fast enough: count the message, keep memory bounded.
		c.dropped.Add(1)
	}
}

// Publish sends payload (a string or an ArrayBuffer) to topic at qos (default 1). At QoS 1 it
// waits for the PUBACK and records the round trip in mqtt_puback_duration. It returns true on
// success and false on failure (the reason is in lastError()); both count in the metrics.
func (c *Client) Publish(topic string, payload sobek.Value, qos sobek.Value, retain sobek.Value) bool {
	rt := c.vu.Runtime()
	state := c.requireVU("publish")
	q := c.qosArg(qos)
	if topic == "" || strings.ContainsAny(topic, "+#") {
		common.Throw(rt, fmt.Errorf("mqtt: publish: %q is not a topic name (empty, or with a wildcard)", topic))
	}
	body, err := payloadBytes(payload)
	if err != nil {
		common.Throw(rt, fmt.Errorf("mqtt: publish: %w", err))
	}
	keep := !common.IsNullish(retain) && retain.ToBoolean()

	start := time.Now()
	if c.closed {
		err = errClosed
	} else {
		err = c.await(c.conn.Publish(topic, q, keep, body), "acknowledgement")
	}
	elapsed := time.Since(start)

	failed := 0.0
	if err != nil {
		failed = 1
		c.lastErr = fmt.Sprintf("publish to %s: %s", topic, err)
	}
	at := stampOf(state)
	samples := make(metrics.Samples, 0, 4)
	samples = append(samples, at.sample(c.metrics.publishes, 1), at.sample(c.metrics.publishFailures, failed))
	if err == nil && q > 0 {
		samples = append(samples, at.sample(c.metrics.pubackDuration, metrics.D(elapsed)))
	}
	c.push(state, c.receivedSample(samples, state))
	return err == nil
}

// Subscribe subscribes to a topic filter at qos (default 1) and waits for the SUBACK; it throws
// when the broker refuses. Messages are counted in mqtt_messages_received and kept for poll().
func (c *Client) Subscribe(filter string, qos sobek.Value) {
	rt := c.vu.Runtime()
	c.requireVU("subscribe")
	q := c.qosArg(qos)
	if c.closed {
		common.Throw(rt, fmt.Errorf("mqtt: subscribe to %s: %w", filter, errClosed))
	}
	token := c.conn.Subscribe(filter, q, c.onMessage)
	if err := c.await(token, "SUBACK"); err != nil {
		common.Throw(rt, fmt.Errorf("mqtt: subscribe to %s: %w", filter, err))
	}
	if sub, ok := token.(*paho.SubscribeToken); ok {
		if code, found := sub.Result()[filter]; found && code >= 0x80 {
			common.Throw(rt, fmt.Errorf("mqtt: subscribe to %s: refused by the broker (not authorised?)", filter))
		}
	}
}

// Poll returns up to max (default 100) received messages as [{topic, payload, qos, retained}],
// payload a string. With timeoutMs > 0 it waits that long for a first message when none is
// waiting; it never blocks otherwise.
func (c *Client) Poll(max sobek.Value, timeoutMs sobek.Value) sobek.Value {
	rt := c.vu.Runtime()
	state := c.requireVU("poll")
	limit := 100
	if !common.IsNullish(max) {
		limit = int(max.ToInteger())
	}
	var wait time.Duration
	if !common.IsNullish(timeoutMs) {
		wait = time.Duration(timeoutMs.ToInteger()) * time.Millisecond
	}
	items := make([]any, 0)
	if wait > 0 && len(c.inbox) == 0 && limit > 0 {
		timer := time.NewTimer(wait)
		select {
		case m := <-c.inbox:
			items = append(items, c.toJS(m))
		case <-timer.C:
		case <-c.vu.Context().Done():
		}
		timer.Stop()
	}
drain:
	for len(items) < limit {
		select {
		case m := <-c.inbox:
			items = append(items, c.toJS(m))
		default:
			break drain
		}
	}
	c.push(state, c.receivedSample(nil, state))
	return rt.NewArray(items...)
}

// Received is the number of messages this client's subscriptions delivered so far.
func (c *Client) Received() int64 {
	if state := c.vu.State(); state != nil {
		c.push(state, c.receivedSample(nil, state))
	}
	return c.received.Load()
}

// Dropped is the number of received messages not kept for poll() because the buffer was full.
func (c *Client) Dropped() int64 { return c.dropped.Load() }

// IsConnected tells whether the connection is up.
func (c *Client) IsConnected() bool { return !c.closed && c.conn.IsConnectionOpen() }

// LastError is the reason of the last failed publish, or "".
func (c *Client) LastError() string { return c.lastErr }

// Close disconnects cleanly (a DISCONNECT packet, after up to 250 ms for work in flight).
// Calling it again does nothing.
func (c *Client) Close() {
	if c.closed {
		return
	}
	c.closed = true
	c.conn.Disconnect(250)
	if state := c.vu.State(); state != nil {
		c.push(state, c.receivedSample(nil, state))
	}
}

var errClosed = errors.New("the client is closed")

func (c *Client) await(token paho.Token, what string) error {
	if !token.WaitTimeout(c.opts.ackTimeout) {
		return fmt.Errorf("no %s within %s", what, c.opts.ackTimeout)
	}
	return token.Error()
}

func (c *Client) requireVU(method string) *lib.State {
	state := c.vu.State()
	if state == nil {
		common.Throw(c.vu.Runtime(), fmt.Errorf("mqtt: %s is only available in VU code", method))
	}
	return state
}

func (c *Client) qosArg(v sobek.Value) byte {
	if common.IsNullish(v) {
		return 1
	}
	q := v.ToInteger()
	if q < 0 || q > 2 {
		common.Throw(c.vu.Runtime(), fmt.Errorf("mqtt: qos must be 0, 1 or 2, got %d", q))
	}
	return byte(q)
}

// stamp is the VU's tags and the time, taken once for the samples of one call.
type stamp struct {
	tags metrics.TagsAndMeta
	at   time.Time
}

func stampOf(state *lib.State) stamp {
	return stamp{tags: state.Tags.GetCurrentValues(), at: time.Now()}
}

func (s stamp) sample(m *metrics.Metric, value float64) metrics.Sample {
	return metrics.Sample{
		TimeSeries: metrics.TimeSeries{Metric: m, Tags: s.tags.Tags},
		Time:       s.at,
		Metadata:   s.tags.Metadata,
		Value:      value,
	}
}

func (c *Client) push(state *lib.State, samples metrics.Samples) {
	if len(samples) > 0 {
		metrics.PushIfNotDone(c.vu.Context(), state.Samples, samples)
	}
}

// receivedSample adds what arrived since the last report to mqtt_messages_received. Samples are
// only ever sent from the VU goroutine: paho's goroutines could outlive the test's sample channel.
func (c *Client) receivedSample(into metrics.Samples, state *lib.State) metrics.Samples {
	now := c.received.Load()
	if delta := now - c.reported; delta > 0 {
		c.reported = now
		into = append(into, stampOf(state).sample(c.metrics.messagesReceived, float64(delta)))
	}
	return into
}

func (c *Client) toJS(m inboundMessage) sobek.Value {
	rt := c.vu.Runtime()
	o := rt.NewObject()
	_ = o.Set("topic", m.topic)
	_ = o.Set("payload", string(m.payload))
	_ = o.Set("qos", int(m.qos))
	_ = o.Set("retained", m.retained)
	return o
}

func payloadBytes(v sobek.Value) ([]byte, error) {
	if common.IsNullish(v) {
		return []byte{}, nil
	}
	switch data := v.Export().(type) {
	case string:
		return []byte(data), nil
	case sobek.ArrayBuffer:
		return data.Bytes(), nil
	case []byte:
		return data, nil
	default:
		return nil, fmt.Errorf("the payload must be a string or an ArrayBuffer, got %T", data)
	}
}

func parseOptions(rt *sobek.Runtime, arg sobek.Value) (options, error) {
	opts := options{
		cleanSession:   true,
		keepAlive:      30 * time.Second,
		connectTimeout: 5 * time.Second,
		ackTimeout:     5 * time.Second,
		bufferSize:     10_000,
	}
	if common.IsNullish(arg) {
		return opts, errors.New("mqtt: new Client({url, ...}) needs an options object")
	}
	obj := arg.ToObject(rt)
	var rawURL string
	for _, key := range obj.Keys() {
		v := obj.Get(key)
		var err error
		switch key {
		case "url":
			rawURL, err = stringOption(key, v)
		case "username":
			opts.username, err = stringOption(key, v)
		case "password":
			opts.password, err = stringOption(key, v)
		case "clientId":
			opts.clientID, err = stringOption(key, v)
		case "cleanSession":
			opts.cleanSession = v.ToBoolean()
		case "keepAlive":
			opts.keepAlive, err = durationOption(key, v, time.Second)
		case "connectTimeout":
			opts.connectTimeout, err = durationOption(key, v, time.Millisecond)
		case "ackTimeout":
			opts.ackTimeout, err = durationOption(key, v, time.Millisecond)
		case "bufferSize":
			var n float64
			n, err = numberOption(key, v)
			opts.bufferSize = int(n)
		default:
			err = fmt.Errorf("mqtt: unknown option %q (known: url, username, password, clientId, cleanSession, keepAlive, connectTimeout, ackTimeout, bufferSize)", key)
		}
		if err != nil {
			return opts, err
		}
	}
	if rawURL == "" {
		return opts, errors.New("mqtt: the url option is required, e.g. mqtt://127.0.0.1:1883")
	}
	broker, err := url.Parse(rawURL)
	if err != nil {
		return opts, fmt.Errorf("mqtt: url: %w", err)
	}
	port := ""
	switch broker.Scheme {
	case "mqtt", "tcp":
		port = "1883"
	case "mqtts", "ssl", "tls":
		port, opts.tls = "8883", true
	default:
		return opts, fmt.Errorf("mqtt: url: scheme %q is not supported (mqtt, tcp, mqtts, ssl, tls)", broker.Scheme)
	}
	if broker.Hostname() == "" {
		return opts, errors.New("mqtt: url: no host")
	}
	if broker.User != nil {
		// Credentials in the URL, as the platform's MQTT_URL carries them; explicit options win.
		if opts.username == "" {
			opts.username = broker.User.Username()
		}
		if pw, ok := broker.User.Password(); ok && opts.password == "" {
			opts.password = pw
		}
	}
	host := broker.Host
	if broker.Port() == "" {
		host = net.JoinHostPort(broker.Hostname(), port)
	}
	opts.broker = &url.URL{Scheme: broker.Scheme, Host: host}
	if opts.clientID == "" {
		opts.clientID = "k6-" + randomHex(8)
	}
	if opts.bufferSize < 0 {
		return opts, errors.New("mqtt: bufferSize must not be negative")
	}
	return opts, nil
}

func stringOption(key string, v sobek.Value) (string, error) {
	s, ok := v.Export().(string)
	if !ok {
		return "", fmt.Errorf("mqtt: option %s must be a string", key)
	}
	return s, nil
}

func numberOption(key string, v sobek.Value) (float64, error) {
	f := v.ToFloat()
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("mqtt: option %s must be a non-negative number", key)
	}
	return f, nil
}

func durationOption(key string, v sobek.Value, unit time.Duration) (time.Duration, error) {
	f, err := numberOption(key, v)
	return time.Duration(f * float64(unit)), err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
