package vkc

/*
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

#define VKC_LOG_KEEP 256

typedef struct {
	int severity; // VkDebugUtilsMessageSeverityFlagBitsEXT
	int types;    // VkDebugUtilsMessageTypeFlagsEXT
	char* text;
} vkc_msg;

typedef struct {
	pthread_mutex_t mu;
	int total;                    // messages seen
	int kept;                     // the first VKC_LOG_KEEP are kept
	vkc_msg msgs[VKC_LOG_KEEP];
	VkDebugUtilsMessengerEXT messenger;
	VkDebugUtilsMessengerCreateInfoEXT ci;
	VkValidationFeaturesEXT vf;
	VkValidationFeatureEnableEXT enables[1];
} vkc_log;

static VKAPI_ATTR VkBool32 VKAPI_CALL vkc_callback(
		VkDebugUtilsMessageSeverityFlagBitsEXT severity,
		VkDebugUtilsMessageTypeFlagsEXT types,
		const VkDebugUtilsMessengerCallbackDataEXT* data, void* user) {
	vkc_log* l = user;
	const char* id = data && data->pMessageIdName ? data->pMessageIdName : "";
	const char* msg = data && data->pMessage ? data->pMessage : "";
	size_t n = strlen(id) + strlen(msg) + 4;
	char* text = malloc(n);
	if (text) snprintf(text, n, "[%s] %s", id, msg);
	pthread_mutex_lock(&l->mu);
	l->total++;
	if (l->kept < VKC_LOG_KEEP && text) {
		l->msgs[l->kept].severity = (int)severity;
		l->msgs[l->kept].types = (int)types;
		l->msgs[l->kept].text = text;
		l->kept++;
		text = NULL;
	}
	pthread_mutex_unlock(&l->mu);
	free(text);
	return VK_FALSE; // never abort the call
}

static vkc_log* vkc_log_new(int syncValidation) {
	vkc_log* l = calloc(1, sizeof(*l));
	if (!l) return NULL;
	pthread_mutex_init(&l->mu, NULL);
	l->ci.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
	l->ci.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
	l->ci.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
		VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
	l->ci.pfnUserCallback = vkc_callback;
	l->ci.pUserData = l;
	if (syncValidation) {
		l->enables[0] = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
		l->vf.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT;
		l->vf.enabledValidationFeatureCount = 1;
		l->vf.pEnabledValidationFeatures = l->enables;
		l->ci.pNext = &l->vf;
	}
	return l;
}

static int vkc_log_attach(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, vkc_log* l) {
	PFN_vkCreateDebugUtilsMessengerEXT create =
		(PFN_vkCreateDebugUtilsMessengerEXT)gipa(inst, "vkCreateDebugUtilsMessengerEXT");
	if (!create) return (int)VK_ERROR_EXTENSION_NOT_PRESENT;
	VkDebugUtilsMessengerCreateInfoEXT ci = l->ci;
	ci.pNext = NULL;
	return (int)create(inst, &ci, NULL, &l->messenger);
}

static void vkc_log_detach(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, vkc_log* l) {
	if (l->messenger == VK_NULL_HANDLE) return;
	PFN_vkDestroyDebugUtilsMessengerEXT destroy =
		(PFN_vkDestroyDebugUtilsMessengerEXT)gipa(inst, "vkDestroyDebugUtilsMessengerEXT");
	if (destroy) destroy(inst, l->messenger, NULL);
	l->messenger = VK_NULL_HANDLE;
}

// vkc_log_get copies message i (i < kept) out; returns the total seen.
static int vkc_log_count(vkc_log* l, int* kept) {
	pthread_mutex_lock(&l->mu);
	int t = l->total;
	*kept = l->kept;
	pthread_mutex_unlock(&l->mu);
	return t;
}

static const char* vkc_log_text(vkc_log* l, int i, int* severity, int* types) {
	pthread_mutex_lock(&l->mu);
	const char* s = l->msgs[i].text;
	*severity = l->msgs[i].severity;
	*types = l->msgs[i].types;
	pthread_mutex_unlock(&l->mu);
	return s; // stable: a kept message is never freed before vkc_log_free
}

static void vkc_log_free(vkc_log* l) {
	for (int i = 0; i < l->kept; i++) free(l->msgs[i].text);
	pthread_mutex_destroy(&l->mu);
	free(l);
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// Message is one message of the validation layer (or the loader).
type Message struct {
	Severity string // "warning" or "error"
	Types    string // "general", "validation", "performance", joined by "|"
	Text     string // "[VUID-...] text"
}

// String formats m as "error validation: [VUID-...] text".
func (m Message) String() string { return m.Severity + " " + m.Types + ": " + m.Text }

// Log records the warnings and errors of VK_EXT_debug_utils. The callback is
// C code that copies each message into C memory under a mutex, so it is safe
// from any driver thread and never calls into Go.
type Log struct{ p *C.vkc_log }

// NewLog returns an empty log. With syncValidation, its instance chain also
// turns on the validation layer's synchronization validation (missing or
// wrong barriers).
func NewLog(syncValidation bool) (*Log, error) {
	s := C.int(0)
	if syncValidation {
		s = 1
	}
	p := C.vkc_log_new(s)
	if p == nil {
		return nil, errors.New("vulkan: debug log: out of host memory")
	}
	return &Log{p: p}, nil
}

// InstanceNext returns the VkDebugUtilsMessengerCreateInfoEXT (chained to
// VkValidationFeaturesEXT when asked) to put in VkInstanceCreateInfo.pNext,
// so that messages of vkCreateInstance/vkDestroyInstance are recorded too.
// The instance must enable VK_EXT_debug_utils (and VK_EXT_validation_features
// for synchronization validation).
func (l *Log) InstanceNext() unsafe.Pointer { return unsafe.Pointer(&l.p.ci) }

// Attach creates the messenger on inst.
func (l *Log) Attach(inst unsafe.Pointer) error {
	return Check("vkCreateDebugUtilsMessengerEXT",
		int32(C.vkc_log_attach(C.PFN_vkGetInstanceProcAddr(gipa), C.VkInstance(inst), l.p)))
}

// Detach destroys the messenger; call it before vkDestroyInstance.
func (l *Log) Detach(inst unsafe.Pointer) {
	C.vkc_log_detach(C.PFN_vkGetInstanceProcAddr(gipa), C.VkInstance(inst), l.p)
}

// Count returns the number of messages seen so far (every one is counted, the
// first 256 are kept).
func (l *Log) Count() int {
	var kept C.int
	return int(C.vkc_log_count(l.p, &kept))
}

// Messages returns the kept messages from index from on.
func (l *Log) Messages(from int) []Message {
	var kept C.int
	C.vkc_log_count(l.p, &kept)
	var out []Message
	for i := max(from, 0); i < int(kept); i++ {
		var sev, typ C.int
		s := C.vkc_log_text(l.p, C.int(i), &sev, &typ)
		out = append(out, Message{Severity: severityName(int(sev)), Types: typeNames(int(typ)), Text: C.GoString(s)})
	}
	return out
}

// Free releases the log; Detach must have been called.
func (l *Log) Free() {
	if l.p != nil {
		C.vkc_log_free(l.p)
		l.p = nil
	}
}

func severityName(s int) string {
	switch {
	case s&C.VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT != 0:
		return "error"
	case s&C.VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT != 0:
		return "warning"
	case s&C.VK_DEBUG_UTILS_MESSAGE_SEVERITY_INFO_BIT_EXT != 0:
		return "info"
	}
	return "verbose"
}

func typeNames(t int) string {
	s := ""
	for _, n := range []struct {
		bit  int
		name string
	}{
		{C.VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT, "general"},
		{C.VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT, "validation"},
		{C.VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT, "performance"},
	} {
		if t&n.bit != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
		}
	}
	return s
}
