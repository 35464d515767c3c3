// Package mqtt is the project's k6 extension for MQTT load: it registers k6/x/mqtt, whose Client
// publishes (waiting for the PUBACK at QoS 1 and timing it), subscribes and receives.
//
// The public MQTT extensions are not served by the Go module proxy reachable here, so this one
// is small, built on paho.mqtt.golang, and documented in loadtest/README.md.
package mqtt

import (
	"errors"

	"go.k6.io/k6/js/modules"
	"go.k6.io/k6/metrics"
)

func init() {
	modules.Register("k6/x/mqtt", new(rootModule))
}

type rootModule struct{}

// clientMetrics are the custom metrics every Client reports.
type clientMetrics struct {
	publishes        *metrics.Metric // counter: publish calls
	publishFailures  *metrics.Metric // rate: share of publish calls that failed
	pubackDuration   *metrics.Metric // trend, ms: publish to PUBACK at QoS 1 (to PUBCOMP at QoS 2)
	messagesReceived *metrics.Metric // counter: messages delivered to this VU's subscriptions
}

type moduleInstance struct {
	vu      modules.VU
	metrics clientMetrics
}

var (
	_ modules.Module   = (*rootModule)(nil)
	_ modules.Instance = (*moduleInstance)(nil)
)

// NewModuleInstance runs once per VU, in the init context, where the metric registry is reachable.
// Registering a metric that already exists with the same type returns the existing one.
func (*rootModule) NewModuleInstance(vu modules.VU) modules.Instance {
	env := vu.InitEnv()
	if env == nil || env.Registry == nil {
		panic(errors.New("k6/x/mqtt must be imported in the init context"))
	}
	registry := env.Registry
	return &moduleInstance{
		vu: vu,
		metrics: clientMetrics{
			publishes:        registry.MustNewMetric("mqtt_publishes", metrics.Counter),
			publishFailures:  registry.MustNewMetric("mqtt_publish_failures", metrics.Rate),
			pubackDuration:   registry.MustNewMetric("mqtt_puback_duration", metrics.Trend, metrics.Time),
			messagesReceived: registry.MustNewMetric("mqtt_messages_received", metrics.Counter),
		},
	}
}

func (mi *moduleInstance) Exports() modules.Exports {
	return modules.Exports{Named: map[string]any{"Client": mi.newClient}}
}
